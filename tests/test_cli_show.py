"""``checker show``: exact text on every committed counterexample (golden files), with
and without colour and --diff; bad files are one-line errors; ``check`` shares the view.

To regenerate the golden files after an intended change of the view:

    CHECKER_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cli_show.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli

from .conftest import COUNTEREXAMPLES, ROOT, SPECS

GOLDEN = Path(__file__).resolve().parent / "golden" / "show"
UPDATE = bool(os.environ.get("CHECKER_UPDATE_GOLDEN"))
REGENERATE = "CHECKER_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_cli_show.py"

#: golden variant -> the options of 'checker show'
VARIANTS: dict[str, tuple[str, ...]] = {
    "plain": ("--no-color",),
    "color": ("--color",),
    "diff": ("--diff", "--no-color"),
    "diff-color": ("--diff", "--color"),
}

#: a committed stale-W counterexample of the legacy rule (in v3.15 .. v4.3)
STALE_W = (
    "counterexamples/history/198c74f43f0f-legacy-stale-w/after-stale_w-1vcpus-v3.15-v4.3-shadow"
)
#: the committed precision counterexample of the old rule (v6.4 .. v6.12, shadow MMU)
PRECISION = COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json"

COMMITTED = sorted(
    p.relative_to(ROOT)
    for p in [*COUNTEREXAMPLES.rglob("*.json"), *COUNTEREXAMPLES.rglob("*.graphml")]
)


def show(*args: str) -> Result:
    return CliRunner().invoke(cli, ["show", *args])


def golden_path(counterexample: Path, variant: str) -> Path:
    relative = counterexample.relative_to("counterexamples")
    return GOLDEN / relative.parent / f"{relative.name}.{variant}.txt"


def test_there_are_committed_counterexamples_and_no_stale_goldens() -> None:
    assert COMMITTED, "no committed counterexamples"
    expected = {golden_path(c, v) for c in COMMITTED for v in VARIANTS}
    present = set(GOLDEN.rglob("*.txt"))
    assert not present - expected, f"stale golden files: {sorted(present - expected)}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("counterexample", COMMITTED, ids=str)
def test_show_matches_its_golden_file(
    counterexample: Path, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the view names the file as given: keep it relative
    result = show(str(counterexample), *VARIANTS[variant])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    golden = golden_path(counterexample, variant)
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.stdout, encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"no golden file {golden.relative_to(ROOT)}; create it with: {REGENERATE}")
    expected = golden.read_text(encoding="utf-8")
    if result.stdout != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), result.stdout.splitlines(), "golden", "now", lineterm=""
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(
            f"'checker show {counterexample} {' '.join(VARIANTS[variant])}' differs from "
            f"{golden.relative_to(ROOT)}:\n{shown}\n"
            f"if the change is intended, regenerate the golden files with: {REGENERATE}"
        )


def test_json_and_graphml_show_the_same_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    json_lines = show(f"{STALE_W}.json").stdout.splitlines()
    graphml_lines = show(f"{STALE_W}.graphml").stdout.splitlines()
    differ = [i for i, (a, b) in enumerate(zip(json_lines, graphml_lines, strict=True)) if a != b]
    assert differ == [2]  # only the line naming the file


def test_colour_follows_no_color_and_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(PRECISION)
    assert "\x1b[" not in show(path).stdout  # not a terminal: no colour by default
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" in show(path, "--color").stdout  # an explicit --color wins


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a counterexample file"),
        (
            '{"graph": {"schema": "checker.counterexample/9"}, "nodes": [], "edges": []}',
            "unknown format 'checker.counterexample/9'",
        ),
    ],
)
def test_a_corrupt_file_is_one_line_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = show(str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_file_that_does_not_replay_is_exit_2(tmp_path: Path) -> None:
    data = json.loads((ROOT / f"{STALE_W}.json").read_text())
    data["graph"]["expression"] = (
        "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
    )
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    result = show(str(path))
    assert result.exit_code == 2
    assert "failed to replay" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = show(str(tmp_path / "nope.json"))
    assert (
        result.exit_code == 2
        and "nope.json: no such file; pass a counterexample file" in result.stderr
    )


def test_check_prints_its_violations_with_the_same_view(tmp_path: Path) -> None:
    checked = CliRunner().invoke(
        cli,
        [
            "check",
            "--rule",
            "old",
            "--mmu",
            "shadow",
            "--specs",
            str(SPECS),
            "--out",
            str(tmp_path),
        ],
    )
    assert checked.exit_code == 1
    shown = show(
        str(tmp_path / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json")
    ).stdout.splitlines()
    table_start = shown.index("")
    table = shown[table_start + 1 : shown.index("", table_start + 1)]
    for line in table:
        assert f"  {line}" in checked.stdout.splitlines()
    # the view's last line, a blank line, then the run's summary
    assert checked.stdout.splitlines()[-3:] == [
        f"  {shown[-1]}",
        "",
        "1 rule: old [v6.4-v6.12/shadow] violates (as expected)",
    ]


@pytest.mark.parametrize("key", ["rule", "command", "checker_version", "era"])
def test_terminal_escapes_in_metadata_never_reach_the_terminal(key: str, tmp_path: Path) -> None:
    """An OSC sequence (here: set the window title) in a trace's metadata used to be
    printed as is; such a file is refused, and the message shows the escape."""
    data = json.loads(PRECISION.read_text())
    data["graph"][key] = "x\x1b]0;owned\x07\x9b2J"
    path = tmp_path / "osc.json"
    path.write_text(json.dumps(data))
    result = show(str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"malformed (ValueError: '{key}' holds the control character '\\x1b')" in result.stderr
    assert "\x1b" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_fifo_is_exit_2_not_a_hang(tmp_path: Path, deadline: None) -> None:
    os.mkfifo(tmp_path / "trace.json")
    result = show(str(tmp_path / "trace.json"))
    assert result.exit_code == 2 and result.stderr == (
        f"checker: error: {tmp_path / 'trace.json'}: not a regular file (a FIFO); "
        "pass a counterexample file\n"
    )
