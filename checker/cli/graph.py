"""``checker graph``: the reachable state space of a rule, as a graph file."""

from __future__ import annotations

from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    MAX_VCPUS,
    PathType,
    ensure_file_writable,
    max_states_option,
    paths_options,
    resolve_paths,
    select_rules,
    specs_option,
    write_file,
)
from checker.cli.progress import progress_for, progress_options
from checker.errors import InputError

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
@click.option("--rule", "rule_name", metavar="NAME", help="A rule from specs/rules.")
@click.option("--expr", metavar="C", help="An ad-hoc flush condition in C.")
@click.option("--kernel", type=PathType(path_type=Path), help="The rule of a kernel tree.")
@click.option("--vcpus", type=click.IntRange(1, MAX_VCPUS), default=2, show_default=True)
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
@paths_options
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
    profile: str,
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
    choice = resolve_paths(specs, profile, harvest_flush, enable_flush)
    fmt = fmt or FORMATS.get(output.suffix)
    if fmt is None:
        raise InputError(f"-o {output}: unknown suffix; use .json, .graphml or .dot, or --format")
    if vcpus > MAX_GRAPH_VCPUS and not symmetric:
        raise InputError(
            f"--vcpus {vcpus}: the concrete state graph is too large beyond "
            f"{MAX_GRAPH_VCPUS} vCPUs; add --symmetric"
        )
    ensure_file_writable(output, "-o")
    with progress.step(
        f"exploring {rule.name} ({vcpus} vCPU{'s' if vcpus > 1 else ''})"
    ) as outcome:
        g = statespace.state_graph(System(rule, choice.paths), vcpus, symmetric, max_states)
        outcome.append(f"{g.number_of_nodes()} states, {g.number_of_edges()} steps")
    if fmt == "dot" and (refusal := statespace.dot_refusal(g)) is not None:
        raise InputError(f"-o {output}: nothing written: {refusal}")
    g.graph.update(rule=rule.name, expression=rule.expression, profile=choice.label)
    if fmt == "dot":
        text = statespace.to_dot(g)
    elif fmt == "graphml":
        import networkx as nx

        text = "\n".join(nx.generate_graphml(g)) + "\n"
    else:
        import json

        import networkx as nx

        text = json.dumps(nx.node_link_data(g, edges="edges"), sort_keys=True, indent=2) + "\n"
    write_file(output, text, "-o")
    click.echo(
        f"{output}: {g.number_of_nodes()} states, {g.number_of_edges()} steps"
        + (f" ({g.graph['raw_states']} concrete states)" if symmetric else "")
    )
    return 0
