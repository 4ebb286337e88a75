"""The index of a folder of counterexamples: what each file holds, or why it cannot
be read.

A file counts as readable only if ``checker show`` could show it: it parses, is of
the format this checker writes, and replays to a violation of its property. Any
other file is listed with the reason, never raised: one bad file must not hide
the others.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from checker.errors import CheckerError
from checker.traces.counterexample import Counterexample

SUFFIXES = (".json", ".graphml")
HEADERS = ("file", "rule", "property", "era", "vcpus", "steps", "checker", "z3")


@dataclass(frozen=True)
class Entry:
    """One file: its counterexample, or the reason it cannot be read."""

    path: Path
    counterexample: Counterexample | None = None
    problem: str = ""


def files(directory: Path) -> list[tuple[Path, str]]:
    """Every counterexample-like file under ``directory`` (or ``directory`` itself if
    it is not a folder), sorted by path, each with the reason it cannot even be
    looked at ("" if it can): a folder that cannot be read, a dangling symlink, a
    symlink loop. Nothing is left out silently. Symlinked folders are followed,
    except into a folder being walked already (a loop). Hidden files and folders
    (e.g. an interrupted atomic write's temporary) are skipped."""
    try:
        is_folder = directory.is_dir()
    except OSError:
        is_folder = False
    if not is_folder:
        return [(directory, "")]
    found: list[tuple[Path, str]] = []
    _walk(directory, found, ancestors=set())
    return sorted(found, key=lambda item: item[0].as_posix())


def _walk(folder: Path, found: list[tuple[Path, str]], ancestors: set[tuple[int, int]]) -> None:
    try:
        status = folder.stat()
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        found.append((folder, f"cannot read the folder: {exc.strerror or exc}"))
        return
    here = (status.st_dev, status.st_ino)
    for child in children:
        if child.name.startswith("."):
            continue
        path = folder / child.name
        problem = _link_problem(path)
        try:
            is_folder = child.is_dir() if not problem else False
        except OSError:
            is_folder = False
        if is_folder:
            target = path.stat()
            if (target.st_dev, target.st_ino) in {*ancestors, here}:
                found.append((path, "symlink loop (a folder inside itself); not followed"))
            else:
                _walk(path, found, ancestors | {here})
        elif child.name.endswith(SUFFIXES) or problem:
            found.append((path, problem))


def _link_problem(path: Path) -> str:
    """Why the symlink ``path`` leads nowhere ("" if it is no symlink or leads somewhere)."""
    try:
        path.stat()
    except OSError as exc:
        if not path.is_symlink():
            return f"cannot read: {exc.strerror or exc}"
        target = os.readlink(path)
        if exc.errno == errno.ELOOP:
            return f"symlink loop (to {target})"
        if exc.errno == errno.ENOENT:
            return f"dangling symlink (to {target})"
        return f"cannot follow the symlink to {target}: {exc.strerror or exc}"
    return ""


def read(path: Path) -> Entry:
    """``path``'s entry; never raises."""
    from checker.traces.load import load

    try:
        return Entry(path, load(path))
    except CheckerError as exc:
        return Entry(path, problem=_reason(str(exc), path))
    except Exception as exc:  # a bug must not stop the listing either
        return Entry(path, problem=" ".join(f"internal error: {type(exc).__name__}: {exc}".split()))


def _reason(message: str, path: Path) -> str:
    """The error message without the file name and the advice every line would repeat."""
    prefix = f"{path}: "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    for advice in ("; regenerate it", "; export it again", "; pass "):
        message = message.split(advice)[0]
    return " ".join(message.split())


def scan(directory: Path) -> list[Entry]:
    """One entry per file of :func:`files`, read unless it cannot even be looked at."""
    return [
        read(p) if not problem else Entry(p, problem=problem) for p, problem in files(directory)
    ]


def row(entry: Entry) -> tuple[str, ...]:
    """The entry's cells, each escaped (:func:`checker.text.printable`): file names
    and what files hold must neither split the row nor drive the terminal."""
    from checker.text import printable

    return tuple(printable(cell) for cell in _cells(entry))


def _cells(entry: Entry) -> tuple[str, ...]:
    cx = entry.counterexample
    if cx is None:
        return (str(entry.path), f"unreadable: {entry.problem}")
    t, p = cx.trace, cx.provenance
    return (
        str(entry.path),
        t.rule_name,
        t.prop.name,
        p.era,
        str(t.vcpus),
        str(t.depth),
        p.checker_version,
        p.z3_version,
    )


def lines(entries: list[Entry]) -> list[str]:
    """A header and one aligned line per entry; an unreadable file's reason runs on
    after its name."""
    rows = [HEADERS, *(row(e) for e in entries)]
    full = [r for r in rows if len(r) == len(HEADERS)]
    widths = [max(len(r[i]) for r in full) for i in range(len(HEADERS))]
    widths[0] = max(len(r[0]) for r in rows)
    return [
        "  ".join(cell.ljust(widths[i]) if i < len(r) - 1 else cell for i, cell in enumerate(r))
        for r in rows
    ]
