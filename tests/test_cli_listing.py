"""``checker list``: one line per file, never a crash, exit 2 only for a missing folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from checker.cli import cli

from .conftest import ROOT


def test_lists_the_committed_counterexamples_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "file",
        "rule",
        "property",
        "era",
        "vcpus",
        "steps",
        "checker",
        "z3",
    ]
    # sorted by path: the scenario's files come first, then the history suite's
    assert lines[1].split()[:6] == [
        "counterexamples/clear-dirty-log-init-set/stale_w-1vcpus-v6.13-shadow.graphml",
        "new",
        "stale_w",
        "v6.13/shadow",
        "1",
        "4",
    ]
    history = next(line for line in lines if "/history/" in line)
    assert history.split()[:6] == [
        "counterexamples/history/081976992f43-assertion/before-assertion-1vcpus-v6.13-shadow.graphml",
        "old",
        "assertion",
        "v6.13/shadow",
        "1",
        "2",
    ]
    assert lines[-1].split()[:6] == [
        "counterexamples/old/precision-1vcpus-v6.4-v6.12-shadow.json",
        "old",
        "precision",
        "v6.4-v6.12/shadow",
        "1",
        "2",
    ]
    committed = [
        *(ROOT / "counterexamples").rglob("*.json"),
        *(ROOT / "counterexamples").rglob("*.graphml"),
    ]
    assert len(lines) == 1 + len(committed) == 35


def test_an_unreadable_file_is_a_line_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    result = CliRunner().invoke(cli, ["list", str(tmp_path)])
    assert result.exit_code == 0 and result.stderr == ""
    assert f"{tmp_path / 'bad.json'}  unreadable: not a counterexample file" in result.stdout


def test_an_empty_folder_says_so_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["list", str(tmp_path)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no counterexample files" in result.stderr


def test_a_missing_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["list", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"checker: error: {tmp_path / 'nope'}: no such directory; "
        "pass the folder of the counterexamples"
    ]


# --- hostile folders: nothing left out, nothing obeyed ---------------------------------------

COMMITTED = ROOT / "counterexamples" / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json"


def rows(directory: Path) -> dict[str, str]:
    """The listing of ``directory``: each row's file name -> the rest of the row."""
    result = CliRunner().invoke(cli, ["list", str(directory)])
    assert result.exit_code == 0 and result.stderr == "", result.output
    found = {}
    for line in result.stdout.splitlines()[1:]:
        name, _, rest = line.partition("  ")
        found[name.removeprefix(f"{directory}/")] = rest.strip()
    return found


def test_dangling_symlinks_loops_and_fifos_get_a_row(tmp_path: Path) -> None:
    (tmp_path / "dangling.json").symlink_to("nowhere.json")
    (tmp_path / "loop.json").symlink_to("loop.json")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    os.mkfifo(tmp_path / "fifo.json")
    assert rows(tmp_path) == {
        "dangling.json": "unreadable: dangling symlink (to nowhere.json)",
        "fifo.json": "unreadable: not a regular file (a FIFO)",
        "loop.json": "unreadable: symlink loop (to loop.json)",
        "sub/up": "unreadable: symlink loop (a folder inside itself); not followed",
    }


def test_an_unreadable_folder_gets_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "t.json").write_text("{}")
    real = os.scandir

    def scandir(path: Any) -> Any:  # root reads a chmod 000 folder: refuse as it would not
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert rows(tmp_path) == {
        "locked": "unreadable: cannot read the folder: Permission denied",
    }


def test_escapes_in_names_and_metadata_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A rule name with an OSC sequence or a newline, or such a file name, must
    neither reach the terminal nor split a row."""
    data = json.loads(COMMITTED.read_text())
    data["graph"]["rule"] = "old\n\x1b]0;owned\x07"
    (tmp_path / "rule.json").write_text(json.dumps(data))
    (tmp_path / "name\x1b[2J\n.json").write_bytes(COMMITTED.read_bytes())
    itf = json.loads(CliRunner().invoke(cli, ["export", str(COMMITTED), "--format", "itf"]).stdout)
    itf["#meta"]["checker"]["vcpus"] = 10**9  # took 24 GB before sizes were checked
    (tmp_path / "huge.itf.json").write_text(json.dumps(itf))
    result = CliRunner().invoke(cli, ["list", str(tmp_path)])
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and len(result.stdout.splitlines()) == 4
    listed = rows(tmp_path)
    assert listed["huge.itf.json"].startswith("unreadable: malformed (ValueError: 'vcpus' is")
    assert listed["name\\x1b[2J\\n.json"].startswith("old   precision")
    assert listed["rule.json"] == (
        "unreadable: malformed (ValueError: 'rule' holds the control character '\\n')"
    )
