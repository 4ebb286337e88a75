"""What changed in git since a revision (``checker gate --changed-since REV``).

A file counts as changed when ``git diff --name-only REV -- PATHS`` lists it
(committed since REV, staged or not: the working tree is compared with REV) or
when it is untracked and not ignored (a rule file not yet added). Git is run as a
subprocess; a missing git, a directory outside any repository or an unknown
revision is an input error (exit 2, one line).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from checker.errors import InputError

OPTION = "--changed-since"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise InputError(f"{OPTION}: git is not installed") from None


def repository_root(directory: Path) -> Path | None:
    """The root of the git work tree holding ``directory``; None outside one (or
    without git)."""
    probe = directory if directory.is_dir() else directory.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(probe), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return Path(done.stdout.strip())


def changed_files(directory: Path, revision: str, paths: Sequence[Path]) -> set[Path]:
    """The files under ``paths`` that differ from ``revision`` (resolved paths)."""
    root = repository_root(directory)
    if root is None:
        raise InputError(f"{OPTION} {revision}: {directory} is not in a git repository")
    verified = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if verified.returncode != 0:
        raise InputError(f"{OPTION} {revision}: unknown revision in {root}")
    scope = [str(p.resolve()) for p in paths]
    found: set[Path] = set()
    for args in (
        ("diff", "--name-only", "-z", verified.stdout.strip(), "--", *scope),
        ("ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", *scope),
    ):
        done = _git(root, *args)
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            raise InputError(f"{OPTION} {revision}: git {args[0]}: {message}")
        found.update((root / name).resolve() for name in done.stdout.split("\0") if name)
    return found


def under(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())
