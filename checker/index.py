"""The index of a folder of counterexamples: what each file holds, or why it cannot
be read.

A file counts as readable only if ``checker show`` could show it: it parses, is of
the format this checker writes, and replays to a violation of its property. Any
other file is listed with the reason, never raised: one bad file must not hide
the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from checker.counterexample import Counterexample
from checker.errors import CheckerError

SUFFIXES = (".json", ".graphml")
HEADERS = ("file", "rule", "property", "profile", "vcpus", "steps", "checker", "z3")


@dataclass(frozen=True)
class Entry:
    """One file: its counterexample, or the reason it cannot be read."""

    path: Path
    counterexample: Counterexample | None = None
    problem: str = ""


def files(directory: Path) -> list[Path]:
    """Every counterexample-like file under ``directory`` (or ``directory`` itself if
    it is a file), sorted; hidden files and folders (e.g. an interrupted atomic
    write's temporary) are skipped."""
    if directory.is_file():
        return [directory]
    found = [
        p
        for p in directory.rglob("*")
        if p.suffix in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(found, key=lambda p: p.as_posix())


def read(path: Path) -> Entry:
    """``path``'s entry; never raises."""
    from checker.counterexample import load

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
    return " ".join(message.split("; regenerate it")[0].split())


def scan(directory: Path) -> list[Entry]:
    return [read(p) for p in files(directory)]


def row(entry: Entry) -> tuple[str, ...]:
    cx = entry.counterexample
    if cx is None:
        return (str(entry.path), f"unreadable: {entry.problem}")
    t, p = cx.trace, cx.provenance
    return (
        str(entry.path),
        t.rule_name,
        t.prop.name,
        p.profile,
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
