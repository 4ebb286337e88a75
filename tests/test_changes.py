"""What changed in git since a revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.errors import InputError
from checker.report import changes

from .conftest import SPECS
from .scenarios import git, scratch_repository


def test_nothing_changed_since_head(tmp_path: Path) -> None:
    repo = scratch_repository(tmp_path, SPECS)
    assert changes.repository_root(repo / "specs") == repo.resolve()
    assert changes.changed_files(repo / "specs", "HEAD", [repo / "specs" / "rules"]) == set()


def test_edits_staged_files_and_untracked_files_count(tmp_path: Path) -> None:
    repo = scratch_repository(tmp_path, SPECS)
    rules = repo / "specs" / "rules"
    (rules / "old.toml").write_text((rules / "old.toml").read_text() + "\n")
    (rules / "extra.toml").write_text("")  # untracked
    (repo / "specs" / "elsewhere.txt").write_text("")  # outside the paths asked about
    staged = rules / "staged.toml"
    staged.write_text("")
    git(repo, "add", str(staged))
    found = changes.changed_files(repo / "specs", "HEAD", [rules])
    assert found == {(rules / n).resolve() for n in ("old.toml", "extra.toml", "staged.toml")}
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    assert changes.changed_files(repo / "specs", "HEAD", [rules]) == set()
    assert len(changes.changed_files(repo / "specs", "HEAD~1", [rules])) == 3


def test_an_unknown_revision_or_no_repository_is_an_input_error(tmp_path: Path) -> None:
    repo = scratch_repository(tmp_path, SPECS)
    with pytest.raises(InputError, match="--changed-since nope: unknown revision"):
        changes.changed_files(repo / "specs", "nope", [repo / "specs"])
    outside = tmp_path / "plain"
    outside.mkdir()
    assert changes.repository_root(outside) is None
    with pytest.raises(InputError, match="is not in a git repository"):
        changes.changed_files(outside, "HEAD", [outside])
