"""``checker history``: the kernel-history regression suite (``specs/history``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathsChoice,
    default_trace_directory,
    ensure_writable,
    out_option,
    specs_option,
    write_trace,
)

if TYPE_CHECKING:
    from checker.engines.history import EntryResult, SideResult

HISTORY_EXIT_CODES = (
    """\b
Exit codes:
  0  every entry is as expected
  1  some entry is NOT AS EXPECTED (wins over 3)
  2  usage or spec error (a bad entry: one line naming its file and field)
  3  inconclusive: some side was not decided, and none contradicts its entry
  4  internal error (a one-line message; the traceback with --debug)
"""
    + SIGNAL_EXIT_CODES
)

#: the ``schema`` field of the --json document
SCHEMA = "kvm-flush-checker/history/1"
#: the folder under --out that holds the suite's traces, one folder per entry
HISTORY_FOLDER = "history"


@click.command(epilog=HISTORY_EXIT_CODES)
@click.option("--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {SCHEMA}).")
@out_option("Where the violated sides' traces are written (under history/<id>/).")
@specs_option
def history(as_json: bool, out: Path | None, specs: Path) -> int:
    """Check the kernel-history regression suite: every entry of specs/history.

    Each entry is a commit that changed what the flush rule has to do, stated as
    one property on one MMU checked twice: the rule and era before the commit and
    the rule and era after it, each with the verdict the model must give. The
    table shows both verdicts, the shortest violation trace, the time taken, and
    whether the entry is as expected. Each violated side's trace (replayed
    through the step function) is written under OUT/history/<id>/.
    """
    from checker import interrupt
    from checker.engines.history import check_history
    from checker.rules.history import load_history

    entries = load_history(specs)
    if out is None:
        out = default_trace_directory()
    if out is not None:
        ensure_writable(out)
    results = check_history(entries)
    # traces are written once every entry is decided: Ctrl-C before this point
    # leaves --out as it was
    interrupt.check()
    files = {
        (r.entry.id, s.name): write_traces(r, s, out) if out is not None else ()
        for r in results
        for s in r.sides
    }
    if as_json:
        from checker.report import document

        click.echo(document.render(history_json(results, files)))
    else:
        from checker.text import printable

        for line in history_lines(results, out):
            click.echo(printable(line))
    return exit_code(results)


def exit_code(results: Sequence[EntryResult]) -> int:
    """1 if an entry is not as expected, else 3 if one is inconclusive, else 0."""
    from checker.engines.history import Status

    statuses = {r.status for r in results}
    if Status.NOT_AS_EXPECTED in statuses:
        return 1
    if Status.INCONCLUSIVE in statuses:
        return 3
    return 0


def _choice(side: SideResult) -> PathsChoice:
    """The side's paths as ``checker check --era E --mmu M`` chooses them."""
    return PathsChoice(side.side.era, side.side.paths)


def write_traces(result: EntryResult, side: SideResult, out: Path) -> tuple[str, ...]:
    """Write ``side``'s trace, if it has one, as ``checker check`` writes it, under
    ``out/history/<id>/`` named ``<side>-<property>-<n>vcpus-<era>-<mmu>``; the files
    written."""
    from checker.cli.check import _provenance, _stem
    from checker.traces import graph

    trace = side.result.trace
    if trace is None:
        return ()
    choice = _choice(side)
    g = graph.trace_graph(trace, _provenance(side.side.rule, trace.vcpus, choice))
    # before and after may share a property and an era (two rules in one era): the
    # side's name keeps their files apart
    stem = f"{side.name}-{_stem(side.result, choice)}"
    return write_trace(g, out / HISTORY_FOLDER / result.entry.id, stem, out)


def _verdict(side: SideResult) -> str:
    """The side's verdict, with what was expected when it is not that."""
    word = side.verdict.value
    return word if side.as_expected else f"{word} (expected {side.side.expect.value})"


def history_lines(results: Sequence[EntryResult], out: Path | None) -> list[str]:
    """The table of ``results`` (one row per entry, sorted as given), a line per side
    that is not as expected, where traces went, and a summary line."""
    from checker.engines.history import Status

    header = (
        "commit",
        "rule",
        "era before -> after",
        "MMU",
        "property",
        "before",
        "after",
        "trace",
        "time",
        "status",
    )
    rows = [header]
    for r in results:
        e = r.entry
        rules = (
            e.before.rule.name
            if e.before.rule.name == e.after.rule.name
            else f"{e.before.rule.name} -> {e.after.rule.name}"
        )
        rows.append(
            (
                e.id,
                rules,
                f"{e.before.era} -> {e.after.era}",
                e.mmu.value,
                e.prop.name,
                _verdict(r.before),
                _verdict(r.after),
                "-" if r.shortest_trace is None else str(r.shortest_trace),
                f"{r.seconds:.2f}s",
                r.status.value,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for r in results:
        if r.status is Status.AS_EXPECTED:
            continue
        for s in r.sides:
            if s.as_expected:
                continue
            reason = f": {s.result.reason}" if s.result.reason else ""
            lines.append(
                f"{r.entry.id}: {s.name}, rule {s.side.rule.name} in {s.side.label}: "
                f"{s.verdict.value}, expected {s.side.expect.value}{reason} ({r.entry.title})"
            )
    traced = sum(1 for r in results for s in r.sides if s.result.trace is not None)
    if traced:
        where = (
            f"written under {out / HISTORY_FOLDER}"
            if out is not None
            else "not written (outside the checker's checkout nothing is written unless "
            "asked); add --out DIR to write them"
        )
        lines.append(f"{traced} violation traces, replayed through the step function; {where}")
    counts = {status: sum(1 for r in results if r.status is status) for status in Status}
    summary = ", ".join(f"{n} {status.value}" for status, n in counts.items() if n)
    lines.append(f"{len(results)} entries: {summary}")
    return lines


def history_json(
    results: Sequence[EntryResult], files: dict[tuple[str, str], tuple[str, ...]]
) -> dict[str, Any]:
    """The --json document: every entry, both sides, the files written per side."""
    from checker.engines.history import Status

    def side(r: EntryResult, s: SideResult) -> dict[str, Any]:
        return {
            "rule": s.side.rule.name,
            "era": s.side.era,
            "expected": s.side.expect.value,
            "verdict": s.verdict.value,
            "as_expected": s.as_expected,
            "trace_length": s.trace_length,
            "trace_vcpus": None if s.result.trace is None else s.result.trace.vcpus,
            "engine": s.result.engine,
            "reason": s.result.reason,
            "seconds": round(s.seconds, 3),
            "files": list(files.get((r.entry.id, s.name), ())),
        }

    return {
        "schema": SCHEMA,
        "entries": [
            {
                "id": r.entry.id,
                "title": r.entry.title,
                "mmu": r.entry.mmu.value,
                "property": r.entry.prop.name,
                "status": r.status.value,
                "shortest_trace": r.shortest_trace,
                "seconds": round(r.seconds, 3),
                "before": side(r, r.before),
                "after": side(r, r.after),
            }
            for r in results
        ],
        "summary": {
            status.name.lower(): sum(1 for r in results if r.status is status) for status in Status
        },
        "exit_code": exit_code(results),
    }
