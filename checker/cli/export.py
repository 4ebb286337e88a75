"""``checker export``: a counterexample in another format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import PathType, write_file
from checker.errors import InputError

if TYPE_CHECKING:
    from checker.traces.counterexample import Counterexample

#: format -> what it is
FORMATS: dict[str, str] = {
    "itf": "Informal Trace Format (Apalache ADR-015) with Quint's mbt:: variables",
    "json": "the networkx graph, node-link JSON (as checker check writes it)",
    "graphml": "the networkx graph, GraphML",
    "dot": "Graphviz DOT: one node per step, top to bottom, actions on the edges",
    "svg": "the same graph drawn as SVG (no Graphviz needed)",
    "html": "an offline viewer: the step table and the graph, keyboard navigation",
}

#: file-name endings that choose the format when --format is not given
SUFFIXES: tuple[tuple[str, str], ...] = (
    (".itf.json", "itf"),
    (".json", "json"),
    (".graphml", "graphml"),
    (".dot", "dot"),
    (".gv", "dot"),
    (".svg", "svg"),
    (".html", "html"),
    (".htm", "html"),
)

#: formats meant for a browser, not a terminal
BROWSER_FORMATS = ("html", "svg")


def _formats_help() -> str:
    lines = [f"  {name:8} {what}" for name, what in FORMATS.items()]
    return "\b\nFormats:\n" + "\n".join(lines) + "\n\n" + EXPORT_EXIT_CODES


EXPORT_EXIT_CODES = (
    """\b
Exit codes:
  0  the export was written
  2  usage error, or a file that does not load or replay; also stdout that cannot
     be written (a full disk, closed)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=_formats_help())
@click.argument("file", type=PathType(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    help="The output format [default: from the -o file name].",
)
@click.option(
    "-o",
    "--output",
    type=PathType(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write here (atomically) instead of stdout.",
)
def export(file: Path, fmt: str | None, output: Path | None) -> int:
    """Export the counterexample in FILE (JSON, GraphML or ITF).

    The file is replayed through the step function first, as by 'checker show'.
    Output goes to stdout, or to -o OUT, written atomically (through a symlink, to
    its target; into a device or FIFO, never replacing it; never onto FILE itself);
    the same input gives the same bytes. html and svg are not written to a
    terminal: pass -o.
    """
    from checker.traces.load import load

    to_stdout = output is None or str(output) == "-"
    if fmt is None:
        fmt = format_of(output) if output is not None and not to_stdout else None
        if fmt is None:
            raise InputError(
                f"give --format ({', '.join(FORMATS)}); "
                "it is only inferred from an -o file name ending in "
                + ", ".join(s for s, _ in SUFFIXES)
            )
    if not to_stdout:
        assert output is not None
        refuse_own_input(file, output)
    if to_stdout and fmt in BROWSER_FORMATS and sys.stdout.isatty():
        raise InputError(f"not writing {fmt} to a terminal; pass -o FILE.{fmt} or redirect stdout")
    text = render(load(file), fmt)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        assert output is not None
        write_file(output, text, "-o")
    return 0


def refuse_own_input(file: Path, output: Path) -> None:
    """Refuse ``-o`` onto FILE itself (by ``os.path.samefile``: through a symlink or
    a hard link too): the export would replace the trace it was made from."""
    import os

    try:
        same = os.path.samefile(file, output)
    except OSError:  # either does not exist (yet): they cannot be the same file
        return
    if same:
        raise InputError(f"-o {output}: is the input file {file}; write the export elsewhere")


def format_of(path: Path) -> str | None:
    for suffix, fmt in SUFFIXES:
        if path.name.endswith(suffix) and fmt in FORMATS:
            return fmt
    return None


def render(cx: Counterexample, fmt: str) -> str:
    """The text of ``cx`` in ``fmt``."""
    from checker.traces import dot, graph, itf, viewer

    if fmt == "html":
        return viewer.html_text(cx)
    if fmt == "dot":
        return dot.dot_text(cx)
    if fmt == "svg":
        return dot.svg_text(cx)
    if fmt == "itf":
        return itf.itf_text(cx)
    if fmt == "json":
        return graph.node_link_json(cx.graph())
    if fmt == "graphml":
        return graph.graphml_text(cx.graph())
    raise AssertionError(fmt)
