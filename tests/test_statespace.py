"""The whole state graph: nodes, keyed edges, violation marks, and its files."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
from click.testing import CliRunner

from checker.cli import cli
from checker.engines import explicit
from checker.engines.check import Engine, Options, check_property
from checker.model import PROPERTY_BY_NAME, System
from checker.traces import statespace
from checker.verdict import Verdict

from .conftest import SPECS


def test_graph_matches_the_exploration(systems: dict[str, System]) -> None:
    g = statespace.state_graph(systems["legacy"], 2)
    ex, _ = explicit.explore(systems["legacy"], 2, symmetric=False)
    assert g.number_of_nodes() == len(ex.parent) and g.number_of_edges() == ex.steps
    assert sum(1 for _, a in g.nodes(data=True) if a["initial"]) == 2
    keys = [k for _, _, k in g.edges(keys=True)]
    assert "guest_access@vcpu1" in keys and "aging" in keys


def test_violations_and_the_shortest_paths_to_them(systems: dict[str, System]) -> None:
    g = statespace.state_graph(systems["legacy"], 1)
    bad = [n for n, a in g.nodes(data=True) if "stale_w" in a["violates"]]
    assert bad and min(g.nodes[n]["depth"] for n in bad) == 4
    marked = nx.MultiDiGraph([(u, v) for u, v, a in g.edges(data=True) if a["on_shortest_path"]])
    for node in bad:
        starts = [n for n in marked if g.nodes[n]["initial"]]
        assert any(nx.has_path(marked, s, node) for s in starts)
    assert any(
        a["violates"] == "write_tracking,precision" or "write_tracking" in a["violates"]
        for _, _, a in g.edges(data=True)
    )
    healthy = statespace.state_graph(systems["new"], 1)
    assert not any(a["violates"] for _, a in healthy.nodes(data=True))
    assert not any(a["on_shortest_path"] for _, _, a in healthy.edges(data=True))


def test_states_and_steps_carry_labels_for_graph_viewers(systems: dict[str, System]) -> None:
    """Gephi and yEd label nodes and edges from a ``label`` attribute: each state's
    label names it and tells it apart from every other state."""
    g = statespace.state_graph(systems["legacy"], 1)
    assert g.nodes["s0"]["label"] == "s0: 0x0000 -, tlb none, gfn -, A/D off"
    labels = [a["label"] for _, a in g.nodes(data=True)]
    assert len({label.split(": ", 1)[1] for label in labels}) == len(labels)
    bad = next(n for n, a in g.nodes(data=True) if a["violates"] == "stale_w")
    assert g.nodes[bad]["label"].endswith(", violates stale_w")
    step = next(a for _, _, k, a in g.edges(keys=True, data=True) if k == "guest_access@vcpu0")
    assert step["label"] == "vcpu0 guest_access"
    # GraphML declares the attribute (a few edges suffice: the whole graph takes 1 s)
    text = "\n".join(nx.generate_graphml(g.edge_subgraph(list(g.edges(keys=True))[:3])))
    for kind in ("node", "edge"):
        assert f'for="{kind}" attr.name="label" attr.type="string"' in text


def test_symmetric_graph_counts_orbits(systems: dict[str, System]) -> None:
    g = statespace.state_graph(systems["new"], 3, symmetric=True)
    assert sum(a["orbit"] for _, a in g.nodes(data=True)) == g.graph["raw_states"] == 2404


def test_dot_ranks_by_depth_and_marks_red(systems: dict[str, System]) -> None:
    text = statespace.to_dot(statespace.state_graph(systems["legacy"], 1))
    assert text.startswith("digraph statespace {") and text.endswith("}\n")
    assert "{ rank=same; s0; s1; }" in text
    assert "style=filled" in text and 'color="red"' in text and "penwidth=2" in text


def test_graph_command_formats(tmp_path: Path) -> None:
    for suffix in (".json", ".graphml", ".dot"):
        out = tmp_path / f"legacy{suffix}"
        result = CliRunner().invoke(
            cli,
            ["graph", "--rule", "legacy", "--vcpus", "1", "-o", str(out), "--specs", str(SPECS)],
        )
        assert result.exit_code == 0, result.output
        assert "states" in result.stdout
    data = json.loads((tmp_path / "legacy.json").read_text())
    back = nx.node_link_graph(data, edges="edges")
    assert isinstance(back, nx.MultiDiGraph)
    assert any(k == "aging" for _, _, k in back.edges(keys=True))
    graphml = nx.read_graphml(tmp_path / "legacy.graphml")
    assert graphml.number_of_nodes() == back.number_of_nodes()


def test_graph_command_refusals(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["graph", "--rule", "new", *args, "--specs", str(SPECS)])
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "unknown suffix" in run("-o", str(tmp_path / "g.txt"))
    assert "add --symmetric" in run("--vcpus", "9", "-o", str(tmp_path / "g.json"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write there" in run("-o", str(blocker / "g.json"))


def test_graph_and_diff_beyond_the_state_budget_are_inconclusive(tmp_path: Path) -> None:
    """256 vCPUs: without a budget, hours of exploration; with one, exit 3 and a line
    saying how to raise it, nothing written."""
    output = tmp_path / "g.json"
    for args in (
        ["graph", "--rule", "new", "--vcpus", "256", "--symmetric", "-o", str(output)],
        ["diff", "old", "new", "--vcpus", "256"],
    ):
        result = CliRunner().invoke(cli, [*args, "--max-states", "2000", "--specs", str(SPECS)])
        assert result.exit_code == 3, result.output
        assert result.stderr.splitlines() == [
            "checker: inconclusive: explicit exploration: more than 2,000 states times vCPUs "
            "(7 reachable states at 256 vCPUs, counted up to symmetry); raise --max-states "
            "(e.g. --max-states 20000) or use fewer vCPUs"
        ]
        assert result.stdout == ""
    assert not output.exists()


def test_check_with_the_explicit_engine_beyond_the_budget_is_inconclusive(
    tmp_path: Path, systems: dict[str, System]
) -> None:
    argv = ["check", "--rule", "legacy", "--max-states", "100", "--engine", "explicit"]
    result = CliRunner().invoke(cli, [*argv, "--specs", str(SPECS), "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert result.stdout.count("INCONCLUSIVE") == 6  # five verdicts and the summary
    assert result.stdout.splitlines()[-1] == "1 rule: legacy INCONCLUSIVE: every property"
    assert "more than 100 states times vCPUs (50 reachable states at 2 vCPUs" in result.stdout
    assert not any(tmp_path.iterdir())
    # both engines asked for, one without an answer: inconclusive, not a disagreement
    rule = systems["legacy"].rule
    options = Options(engine=Engine.ALL, max_states=100)
    both = check_property(rule, PROPERTY_BY_NAME["precision"], options)
    assert both.verdict is Verdict.INCONCLUSIVE and both.trace is None
    assert both.reason.startswith("smt: violated; explicit exploration: more than 100 states")


def test_the_default_budget_bounds_a_symmetric_graph_of_256_vcpus(tmp_path: Path) -> None:
    """The budget counts states times vCPUs: at 256 vCPUs the default one stops the
    exploration within seconds and in little memory (it stored 50,000 states before,
    about 4 GB and two minutes, and died of MemoryError under a 4 GB limit)."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    output = tmp_path / "g.json"
    argv = ["graph", "--rule", "new", "--symmetric", "--vcpus", "256", "-o", str(output)]
    done = subprocess.run(
        [sys.executable, "-m", "checker", *argv, "--specs", str(SPECS)],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        "checker: inconclusive: explicit exploration: more than 400,000 states times vCPUs "
        "(1,562 reachable states at 256 vCPUs, counted up to symmetry); raise --max-states "
        "(e.g. --max-states 4000000) or use fewer vCPUs"
    ]
    assert not output.exists()
