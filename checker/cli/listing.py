"""``checker list``: the counterexamples under a folder, one line per file."""

from __future__ import annotations

from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import PathType
from checker.errors import InputError

LIST_EXIT_CODES = (
    """\b
Exit codes:
  0  listed (unreadable files are listed as such, not an error)
  2  usage error, or no such DIRECTORY; also stdout that cannot be written
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command("list", epilog=LIST_EXIT_CODES)
@click.argument(
    "directory", type=PathType(path_type=Path), default=Path("counterexamples"), required=False
)
def list_counterexamples(directory: Path) -> int:
    """List the counterexample files under DIRECTORY (default: counterexamples).

    Every .json and .graphml file below it, sorted by path, one line each: the
    rule, the property, the paths (era), the vCPUs, the steps and the checker
    and z3 versions that wrote it. Each file is read and replayed as 'checker
    show' would; one that cannot be is listed as unreadable, with the reason.
    """
    from checker.traces import index

    if not directory.exists():
        raise InputError(f"{directory}: no such directory; pass the folder of the counterexamples")
    entries = index.scan(directory)
    if not entries:
        click.echo(f"no counterexample files (.json, .graphml) under {directory}", err=True)
        return 0
    for line in index.lines(entries):
        click.echo(line)
    return 0
