"""``checker export``: every format, stdout or -o, atomic writes, one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli
from checker.cli.export import FORMATS
from checker.traces import load

from .conftest import COUNTEREXAMPLES, ROOT

#: legacy's stale writable TLB entry once the dirty-log flush left mmu_lock
#: (198c74f43f0f, v3.15): a committed counterexample of the history suite
STALE_W = (
    COUNTEREXAMPLES
    / "history"
    / "198c74f43f0f-legacy-stale-w"
    / "after-stale_w-1vcpus-v3.15-v4.3-shadow.json"
)


def export(*args: str) -> Result:
    return CliRunner().invoke(cli, ["export", *args])


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("source", [STALE_W, STALE_W.with_suffix(".graphml")], ids=str)
@pytest.mark.parametrize("fmt", ["json", "graphml"])
def test_graph_exports_are_the_committed_files_byte_for_byte(source: Path, fmt: str) -> None:
    result = export(str(source), "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.stdout == STALE_W.with_suffix(f".{fmt}").read_text()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_is_deterministic_and_written_atomically(fmt: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / f"out.{fmt}", tmp_path / f"out.{fmt}"
    for out in (first, second):
        result = export(str(STALE_W), "--format", fmt, "-o", str(out))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
    assert first.read_bytes() == second.read_bytes() and first.stat().st_size > 0
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary left
    assert export(str(STALE_W), "--format", fmt, "-o", "-").stdout == first.read_text()


@pytest.mark.parametrize("fmt", ["json", "graphml", "itf"])
def test_readable_formats_round_trip_through_the_cli(fmt: str, tmp_path: Path) -> None:
    name = {"itf": "t.itf.json", "json": "t.json", "graphml": "t.graphml"}[fmt]
    result = export(str(STALE_W), "-o", str(tmp_path / name))  # format from the name
    assert result.exit_code == 0, result.output
    again = load.load(tmp_path / name)
    assert again.trace == load.load(STALE_W).trace
    shown = CliRunner().invoke(cli, ["show", str(tmp_path / name)])
    assert shown.exit_code == 0 and "stale_w violated at step 4" in shown.stdout


def test_itf_to_stdout_is_json() -> None:
    result = export(str(STALE_W), "--format", "itf")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["#meta"]["format"] == "ITF"


def test_no_format_and_no_telling_name_is_exit_2(tmp_path: Path) -> None:
    result = export(str(STALE_W), "-o", str(tmp_path / "out.txt"))
    assert result.exit_code == 2
    assert "give --format" in one_line_error(result)
    assert not (tmp_path / "out.txt").exists()


def test_an_unknown_format_is_exit_2() -> None:
    result = export(str(STALE_W), "--format", "pdf")
    assert result.exit_code == 2 and "Invalid value for '--format'" in one_line_error(result)


def test_a_corrupt_input_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = tmp_path / "out.json"
    result = export(str(bad), "--format", "json", "-o", str(out))
    assert result.exit_code == 2 and "not a counterexample file" in one_line_error(result)
    assert not out.exists()


def test_an_unwritable_output_is_exit_2_and_leaves_no_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = export(str(STALE_W), "--format", "json", "-o", str(blocker / "sub" / "out.json"))
    assert result.exit_code == 2
    assert "cannot write" in one_line_error(result)
    assert result.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_exit_2(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = export(str(STALE_W), "--format", "json", "-o", str(locked / "out.json"))
        assert result.exit_code == 2 and "cannot write" in one_line_error(result)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_an_output_that_is_a_directory_is_exit_2(tmp_path: Path) -> None:
    result = export(str(STALE_W), "--format", "json", "-o", str(tmp_path))
    assert result.exit_code == 2


@pytest.mark.parametrize("fmt", ["html", "svg"])
def test_browser_formats_are_not_dumped_on_a_terminal(fmt: str) -> None:
    """On a real terminal (a pty), html and svg need -o or a redirection."""
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "checker", "export", str(STALE_W), "--format", fmt],
            cwd=ROOT,
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    assert f"not writing {fmt} to a terminal; pass -o FILE.{fmt}" in done.stderr


# --- hostile outputs: the input itself, symlinks, devices, empty names ---------------------


def test_the_input_itself_is_refused_as_output(tmp_path: Path) -> None:
    """-o onto FILE (by name, through a symlink or a hard link) would replace the
    trace with its export: refused, FILE untouched."""
    source = tmp_path / "t.json"
    source.write_bytes(STALE_W.read_bytes())
    (tmp_path / "link.json").symlink_to("t.json")
    os.link(source, tmp_path / "hard.json")
    for out in ("t.json", "link.json", "hard.json"):
        result = export(str(source), "--format", "dot", "-o", str(tmp_path / out))
        assert result.exit_code == 2
        assert one_line_error(result) == (
            f"checker: error: -o {tmp_path / out}: is the input file {source}; "
            "write the export elsewhere"
        )
    assert source.read_bytes() == STALE_W.read_bytes()


def test_a_symlink_output_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "real.dot").write_text("old")
    (tmp_path / "link.dot").symlink_to("real.dot")
    result = export(str(STALE_W), "-o", str(tmp_path / "link.dot"))
    assert result.exit_code == 0, result.output
    assert os.readlink(tmp_path / "link.dot") == "real.dot"
    assert (tmp_path / "real.dot").read_text().startswith("digraph")


def test_a_device_output_is_written_into_never_replaced(tmp_path: Path) -> None:
    """As root, -o /dev/full used to rename a regular file over the device."""
    import stat

    full = tmp_path / "full"
    try:
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
        open(full, "w").close()
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc.strerror}")
    result = export(str(STALE_W), "--format", "json", "-o", str(full))
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"checker: error: -o {full}: cannot write: No space left on device"
    )
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["full"]


@pytest.mark.parametrize(
    "args",
    [
        ["export", str(STALE_W), "--format", "json", "-o", ""],
        ["export", ""],
        ["show", ""],
        ["list", ""],
        ["check", "--rule", "new", "--out", ""],
        ["check", "--rule", "new", "--specs", ""],
        ["gate", "--junit", ""],
        ["graph", "--rule", "new", "-o", ""],
        ["extract", ""],
    ],
    ids=lambda args: " ".join(args[:1] + args[-2:]),
)
def test_an_empty_path_is_exit_2_not_the_current_directory(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "an empty path; pass a file or folder name" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []
