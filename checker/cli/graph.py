"""``checker graph``: the reachable state space of a rule, as a graph file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathType,
    ensure_file_writable,
    max_states_option,
    one_mmu_options,
    one_rule_options,
    resolve_paths,
    select_rules,
    specs_option,
    vcpus_option,
    write_file,
)
from checker.cli.progress import progress_for, progress_options
from checker.errors import InputError
from checker.text import vcpu_count


def _interruptible(chunks: Iterator[str]) -> Iterator[str]:
    """``chunks``, stopping (Ctrl-C's ``Interrupted``) at the first one made after
    Ctrl-C was pressed: the file being written is then left as it was."""
    from checker import interrupt

    for i, chunk in enumerate(chunks):
        if i % 4096 == 0:
            interrupt.check()
        yield chunk


FORMATS = {".json": "json", ".graphml": "graphml", ".dot": "dot", ".gv": "dot"}
#: beyond this many vCPUs the concrete graph is too large to be worth writing
MAX_GRAPH_VCPUS = 6


GRAPH_EXIT_CODES = (
    """\b
Exit codes:
  0  the graph was written
  2  usage or spec error
  3  more reachable states than --max-states (nothing written)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=GRAPH_EXIT_CODES)
@one_rule_options
@vcpus_option
@click.option("-o", "--output", type=PathType(path_type=Path), required=True, help="The file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(set(FORMATS.values()))),
    help="json (node-link), graphml or dot; by default from the file's suffix.",
)
@click.option(
    "--symmetric", is_flag=True, help="One node per class of states equal up to renaming vCPUs."
)
@max_states_option
@one_mmu_options
@specs_option
@progress_options
def graph(
    rule_name: str | None,
    expr: str | None,
    kernel: Path | None,
    vcpus: int,
    output: Path,
    fmt: str | None,
    symmetric: bool,
    max_states: int,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    specs: Path,
    show_progress: bool,
    quiet: bool,
) -> int:
    """Write every reachable state and step of a rule as a MultiDiGraph.

    Nodes are states (fields as attributes, initial and violating flags), edges
    are steps keyed by action, with vCPU, kernel function and flush decision. In
    DOT, states are ranked by BFS depth, initial states are filled, edges are
    coloured by operation, and violating states and the shortest paths to them are
    red. DOT is refused (nothing written, exit 2) beyond 5000 steps, which Graphviz
    cannot lay out in reasonable time.
    """
    from checker.model import System
    from checker.traces import statespace

    progress = progress_for(show_progress, quiet, "graph: ")
    [rule] = select_rules(rule_name, expr, False, specs, kernel)
    (choice,) = resolve_paths(specs, era, mmu, harvest_flush, enable_flush, rule)
    fmt = fmt or FORMATS.get(output.suffix)
    if fmt is None:
        raise InputError(f"-o {output}: unknown suffix; use .json, .graphml or .dot, or --format")
    if vcpus > MAX_GRAPH_VCPUS and not symmetric:
        raise InputError(
            f"--vcpus {vcpus}: the concrete state graph is too large beyond "
            f"{MAX_GRAPH_VCPUS} vCPUs; add --symmetric"
        )
    ensure_file_writable(output, "-o")
    with progress.step(f"exploring {rule.name} ({vcpu_count(vcpus)})") as outcome:
        space = statespace.explore(System(rule, choice.paths), vcpus, symmetric, max_states)
        outcome.append(f"{space.number_of_nodes()} states, {space.number_of_edges()} steps")
    if fmt == "dot" and (refusal := statespace.dot_refusal(space)) is not None:
        raise InputError(f"-o {output}: nothing written: {refusal}")
    space.graph.update(rule=rule.name, expression=rule.expression, era=choice.label)
    # JSON and GraphML are written as they are made, never held whole (at 6 vCPUs
    # the graph has 1.7 million steps); DOT is small (at most DOT_MAX_STEPS steps)
    if fmt == "dot":
        write_file(output, statespace.to_dot(statespace.to_graph(space)), "-o")
    else:
        from checker.files import write_chunks

        chunks = (
            statespace.graphml_chunks(space)
            if fmt == "graphml"
            else statespace.node_link_chunks(space)
        )
        write_chunks(output, _interruptible(chunks), "-o")
    click.echo(
        f"{output}: {space.number_of_nodes()} states, {space.number_of_edges()} steps"
        + (f" ({space.graph['raw_states']} concrete states)" if symmetric else "")
    )
    return 0
