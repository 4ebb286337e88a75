"""``checker show``: a counterexample file, step by step, in kernel terms."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import PathType

SHOW_EXIT_CODES = (
    """\b
Exit codes:
  0  shown
  2  usage error, or a file that does not parse or does not reproduce its
     violation; also stdout that cannot be written (a full disk, closed)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=SHOW_EXIT_CODES)
@click.argument("file", type=PathType(path_type=Path, dir_okay=False))
@click.option("--diff", is_flag=True, help="Show only what each step changes (step 0 in full).")
@click.option(
    "--color/--no-color",
    "color",
    default=None,
    help="Colour the changes [default: on a terminal, unless NO_COLOR is set].",
)
def show(file: Path, diff: bool, color: bool | None) -> int:
    """Show the counterexample in FILE (JSON, GraphML or ITF), one row per step.

    The file is replayed through the step function first: a file that does not
    parse or does not reproduce its violation is an error (exit 2).

    \b
    Columns: the step; what each vCPU (or the host) does, as in a kernel commit
    message; the kernel function; the SPTE (bits by name, hex in the x86 and
    EPT layouts); every vCPU's TLB entry; the gfn's flags; whether every TLB was
    flushed; and the rule's decision, each test of its C expression with its
    value on that update. A changed value reads old→new (+x/-x for a bit set or
    cleared, * after a changed hex value), with or without colour. The last line
    names the violated property and the command that reproduces the trace.
    """
    from checker.traces import view
    from checker.traces.load import load

    cx = load(file)
    colour = view.use_colour(color, sys.stdout.isatty(), os.environ)
    for line in view.render(
        cx.trace,
        cx.provenance.expression,
        cx.provenance.command,
        about=[view.source_line(cx)],
        diff=diff,
        paint=view.ansi if colour else view.plain,
        ascii=view.needs_ascii(sys.stdout.encoding),
    ):
        click.echo(line, color=colour)
    return 0
