"""``checker list``: one line per file, never a crash, exit 2 only for a missing folder."""

from __future__ import annotations

from pathlib import Path

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
        "profile",
        "vcpus",
        "steps",
        "checker",
        "z3",
    ]
    assert lines[1].split()[:6] == [
        "counterexamples/legacy/precision-1vcpus.graphml",
        "legacy",
        "precision",
        "default",
        "1",
        "2",
    ]
    assert len(lines) == 9


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
