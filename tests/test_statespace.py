"""The whole state graph: nodes, keyed edges, violation marks, and its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from click.testing import CliRunner

from checker.cli import cli
from checker.engines import explicit
from checker.engines.check import Engine, Options, check_property
from checker.model import PROPERTY_BY_NAME, Paths, System
from checker.model.paths import Mmu
from checker.rules.specs import Rule
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
    assert sum(a["orbit"] for _, a in g.nodes(data=True)) == g.graph["raw_states"] == 1968


def test_dot_ranks_by_depth_and_marks_red(systems: dict[str, System]) -> None:
    text = statespace.to_dot(statespace.state_graph(systems["legacy"], 1))
    assert text.startswith("digraph statespace {") and text.endswith("}\n")
    assert "{ rank=same; s0; s1; }" in text
    assert "style=filled" in text and 'color="red"' in text and "penwidth=2" in text


def test_graph_command_formats(tmp_path: Path) -> None:
    # an era without PML: with it (a third initial state) the 1-vCPU graph has more
    # steps than DOT is written for
    for suffix in (".json", ".graphml", ".dot"):
        out = tmp_path / f"legacy{suffix}"
        result = CliRunner().invoke(
            cli,
            [
                *("graph", "--rule", "legacy", "--vcpus", "1", "--era", "v3.15-v4.3"),
                *("-o", str(out), "--specs", str(SPECS)),
            ],
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


def test_a_concrete_graph_beyond_the_budget_is_refused_with_its_exact_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule new at 2 vCPUs has 1,382 concrete states (1,004 up to symmetry): a budget
    of 2,763 states times vCPUs holds the states up to symmetry but not the graph,
    which is refused with its size without being explored; 2,764 holds it."""
    output = tmp_path / "g.json"
    explored: list[bool] = []
    real = explicit.explore

    def explore(system: System, vcpus: int, symmetric: bool = True, **kwargs: Any) -> Any:
        explored.append(symmetric)
        return real(system, vcpus, symmetric, **kwargs)

    monkeypatch.setattr(explicit, "explore", explore)

    def graph(budget: int) -> Any:
        argv = ["graph", "--rule", "new", "--vcpus", "2", "--max-states", str(budget)]
        return CliRunner().invoke(cli, [*argv, "-o", str(output), "--specs", str(SPECS)])

    result = graph(2763)
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        "checker: inconclusive: explicit exploration: 1,382 reachable states at 2 vCPUs, "
        "2,764 states times vCPUs, more than 2,763; raise --max-states (to at least 2764) "
        "or use fewer vCPUs"
    ]
    assert explored == [True] and not output.exists()
    explored.clear()
    result = graph(2764)
    assert result.exit_code == 0, result.output
    assert explored == [True, False]
    assert json.loads(output.read_text())["graph"]["states"] == 1382


def test_check_with_the_explicit_engine_beyond_the_budget_is_inconclusive(
    tmp_path: Path, systems: dict[str, System]
) -> None:
    argv = ["check", "--rule", "legacy", "--max-states", "100", "--engine", "explicit"]
    result = CliRunner().invoke(cli, [*argv, "--specs", str(SPECS), "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert result.stdout.count("INCONCLUSIVE") == 7  # six verdicts and the summary
    assert result.stdout.splitlines()[-1] == (
        "1 rule: legacy [v3.x/shadow] INCONCLUSIVE: every property"
    )
    assert "more than 100 states times vCPUs (50 reachable states at 2 vCPUs" in result.stdout
    assert not any(tmp_path.iterdir())
    # both engines asked for, one without an answer: inconclusive, not a disagreement
    rule = systems["legacy"].rule
    options = Options(engine=Engine.ALL, max_states=100)
    both = check_property(rule, PROPERTY_BY_NAME["precision"], options)
    assert both.verdict is Verdict.INCONCLUSIVE and both.trace is None
    assert both.reason.startswith("smt: violated; explicit exploration: more than 100 states")


@pytest.mark.slow
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
        # a guard against a hang, not a measure of speed (make bench measures): the
        # run took 14 s alone and over 30 s on a loaded 2-core machine
        timeout=180,
        preexec_fn=limit_memory,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        "checker: inconclusive: explicit exploration: more than 400,000 states times vCPUs "
        "(1,562 reachable states at 256 vCPUs, counted up to symmetry); raise --max-states "
        "(e.g. --max-states 4000000) or use fewer vCPUs"
    ]
    assert not output.exists()


# --- streamed files: what networkx writes, without the graph -----------------------------


def _graph_step_by_step(
    system: System, vcpus: int, symmetric: bool, key: Any = None
) -> nx.MultiDiGraph[str]:
    """The state graph as ``state_graph`` built it before it was streamed: every step
    added to a ``MultiDiGraph`` as the exploration makes it."""
    from checker.engines import semantics
    from checker.model import PROPERTIES, Kind
    from checker.traces import view
    from checker.traces.graph import action_label, state_attributes

    def key_of(action: Any) -> str:
        if key is not None:
            return str(key(action))
        return action.label + (f"@vcpu{action.vcpu}" if action.vcpu is not None else "")

    edges: list[Any] = []

    def record(ex: explicit.Exploration, parent: Any, step: Any) -> bool:
        after = explicit.canonical(step.after)[0] if symmetric else step.after
        edges.append((parent, step, after))
        return False

    ex, _ = explicit.explore(system, vcpus, symmetric, visit=record)
    ids = {state: f"s{i}" for i, state in enumerate(ex.parent)}
    g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    g.graph.update(vcpus=vcpus, symmetric=symmetric, states=len(ids), raw_states=ex.raw_states)
    for reached, node in ids.items():
        broken = [p.name for p in PROPERTIES if semantics.state_is_bad(p, reached)]
        shape = reached.shape
        sptes = ", ".join(view.spte_text(reached, i) for i in range(shape.sptes))
        tlbs = " ".join(
            reached.tlb(v, g).label for v in range(reached.vcpu_count) for g in range(shape.gfns)
        )
        flags = ", ".join(f"{k} {text}" for k, text in view.gfn_items(reached))
        ad = "on" if reached.shared.slot.ad_enabled else "off"
        label = f"{node}: {sptes}, tlb {tlbs}, {flags}, A/D {ad}"
        if broken:
            label += f", violates {', '.join(broken)}"
        attrs: dict[str, Any] = {
            "label": label,
            **state_attributes(reached),
            "depth": ex.depth[reached],
            "initial": ex.parent[reached] is None,
            "violates": ",".join(broken),
        }
        if symmetric:
            attrs["orbit"] = explicit.orbit_size(reached)
        g.add_node(node, **attrs)
    bad_sources = set()
    for parent, step, after in edges:
        broken = [
            p.name for p in PROPERTIES if p.kind is Kind.STEP and semantics.step_is_bad(p, step)
        ]
        if broken:
            bad_sources.add(parent)
        action = step.action
        g.add_edge(
            ids[parent],
            ids[after],
            key=key_of(action),
            label=action_label(action),
            operation=action.op,
            **({"vcpu": action.vcpu} if action.vcpu is not None else {}),
            kernel_function=step.operation.function,
            tlb_flush=step.outcome.flush,
            rule_consulted=step.outcome.rule_consulted,
            rule_flush=step.outcome.rule_flush if step.outcome.rule_consulted else False,
            violates=",".join(broken),
            on_shortest_path=bool(broken),
        )
    targets = {s for s in ids if g.nodes[ids[s]]["violates"]} | bad_sources
    for target in targets:
        state = target
        while (link := ex.parent[state]) is not None:
            parent, action, _ = link
            g.edges[ids[parent], ids[state], key_of(action)]["on_shortest_path"] = True
            state = parent
    return g


def node_link(g: nx.MultiDiGraph[str]) -> str:
    return json.dumps(nx.node_link_data(g, edges="edges"), sort_keys=True, indent=2) + "\n"


def graphml(g: nx.MultiDiGraph[str]) -> str:
    return "\n".join(nx.generate_graphml(g)) + "\n"


STREAMED = [
    ("legacy", 1, False, "default"),
    pytest.param("new", 2, True, "default", marks=pytest.mark.slow),
    pytest.param("old", 2, False, "v3.x", marks=pytest.mark.slow),
    ("is_writable_pte(old_spte) &&\n\t!is_writable_pte(new_spte) /* <\"&'> é */", 1, False, "x&y"),
]


@pytest.mark.parametrize(("rule", "vcpus", "symmetric", "era"), STREAMED)
def test_streamed_files_are_what_networkx_writes(
    shipped_rules: dict[str, Rule], rule: str, vcpus: int, symmetric: bool, era: str
) -> None:
    from checker.rules.specs import adhoc_rule, load_eras

    chosen = shipped_rules[rule] if rule in shipped_rules else adhoc_rule(rule)
    known = load_eras(SPECS).get(era)
    # a shipped era's shadow MMU; the default paths under any other label
    system = System(chosen, known.paths[Mmu.SHADOW] if known is not None else Paths())
    space = statespace.explore(system, vcpus, symmetric)
    space.graph.update(rule=chosen.name, expression=chosen.expression, era=era)
    built = _graph_step_by_step(system, vcpus, symmetric)
    built.graph.update(rule=chosen.name, expression=chosen.expression, era=era)
    g = statespace.to_graph(space)
    assert node_link(g) == node_link(built)
    assert "".join(statespace.node_link_chunks(space)) == node_link(g)
    assert "".join(statespace.graphml_chunks(space)) == graphml(g)


def test_streamed_graphml_escapes_and_breaks_lines_as_networkx(
    systems: dict[str, System],
) -> None:
    space = statespace.explore(systems["legacy"], 1)
    space.graph.update(
        note='a\r\nb\rc\x0bd\x0ce\x1cf\x1dg\x1eh\x85i\u2028j\u2029k\tl "m" <n> &o;', empty=""
    )
    g = statespace.to_graph(space)
    assert "".join(statespace.graphml_chunks(space)) == graphml(g)
    assert "".join(statespace.node_link_chunks(space)) == node_link(g)


def test_steps_alike_are_one_edge_as_networkx_makes_them(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two steps with the same source, target and key are one edge of a
    ``MultiDiGraph`` (the later one's attributes): so they are in the files."""

    def coarse(action: Any) -> str:
        return str(action.op)  # the vCPU and parameters left out: steps alike meet

    monkeypatch.setattr(statespace, "_key", coarse)
    space = statespace.explore(systems["legacy"], 1)
    built = _graph_step_by_step(systems["legacy"], 1, False, key=coarse)
    assert space.number_of_edges() == built.number_of_edges() < space.exploration.steps
    g = statespace.to_graph(space)
    assert node_link(g) == node_link(built)
    assert "".join(statespace.graphml_chunks(space)) == graphml(g)


@pytest.mark.slow
def test_the_graph_of_4_vcpus_is_written_in_little_memory(tmp_path: Path) -> None:
    """167,000 steps: held as a MultiDiGraph, 0.6 GB (JSON) to 1.3 GB (GraphML);
    streamed, under 100 MB. Its address space is limited to 512 MiB here."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    for suffix in (".json", ".graphml"):
        output = tmp_path / f"g{suffix}"
        argv = ["graph", "--rule", "new", "--vcpus", "4", "-o", str(output)]
        done = subprocess.run(
            [sys.executable, "-m", "checker", *argv, "--specs", str(SPECS)],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=limit_memory,
        )
        assert done.returncode == 0, done.stderr
        # new's own era, v6.13, has no prefetch refresh
        assert done.stdout == f"{output}: 8558 states, 207741 steps\n"
    data = json.loads((tmp_path / "g.json").read_text())
    assert len(data["edges"]) == 207741 and len(data["nodes"]) == 8558
