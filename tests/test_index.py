"""The index of a folder of counterexamples: readable files and why others are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from checker.traces import index

from .conftest import COUNTEREXAMPLES


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(COUNTEREXAMPLES, tmp_path / "cx")
    return tmp_path / "cx"


def test_every_committed_file_is_listed_readable() -> None:
    entries = index.scan(COUNTEREXAMPLES)
    assert len(entries) == len(list(COUNTEREXAMPLES.rglob("*.json"))) * 2
    assert all(e.counterexample is not None for e in entries)
    # sorted by the path's text ('a-b/' before 'a/'), as index.files documents
    paths = [e.path.as_posix() for e in entries]
    assert paths == sorted(paths)


def test_unreadable_files_are_listed_with_their_reason(folder: Path) -> None:
    (folder / "a-broken.json").write_text("{")
    (folder / "future.json").write_text(
        '{"graph": {"schema": "checker.counterexample/9"}, "nodes": [], "edges": []}'
    )
    (folder / "binary.graphml").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "notes.txt").write_text("not listed")
    (folder / ".stale_w.json.tmp.json").write_text("{")  # hidden: skipped
    entries = {e.path.name: e for e in index.scan(folder)}
    assert "notes.txt" not in entries and ".stale_w.json.tmp.json" not in entries
    assert entries["a-broken.json"].problem.startswith("not a counterexample file")
    assert entries["future.json"].problem.startswith("unknown format 'checker.counterexample/9'")
    assert entries["binary.graphml"].counterexample is None
    assert all("\n" not in e.problem for e in entries.values())


def test_a_bug_while_reading_is_listed_not_raised(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(path: Path) -> None:
        raise RuntimeError("reader broke\nbadly")

    monkeypatch.setattr("checker.traces.load.load", boom)
    entries = index.scan(folder)
    assert entries and all(
        e.problem == "internal error: RuntimeError: reader broke badly" for e in entries
    )


def test_lines_align_and_unreadable_reasons_run_on(folder: Path) -> None:
    (folder / "old" / "zz.json").write_text("[]")
    lines = index.lines(index.scan(folder))
    assert lines[0].split() == list(index.HEADERS)
    column = lines[0].index("rule")
    readable = [line for line in lines[1:] if "unreadable" not in line]
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in readable)
    [bad] = [line for line in lines if "unreadable" in line]
    assert bad.split("  ")[0].endswith("old/zz.json")
    assert "unreadable: not a counterexample (expected a JSON object)" in bad


def test_a_file_can_be_listed_on_its_own() -> None:
    path = COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json"
    assert [e.path for e in index.scan(path)] == [path]
