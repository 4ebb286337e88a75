"""Counterexample graphs and files: content, round trips, atomicity, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from checker import graph
from checker.bmc import SmtTrace
from checker.certify import replay
from checker.check import Options, check_property
from checker.cli import main
from checker.errors import InputError, InternalError
from checker.model import PROPERTY_BY_NAME, System
from checker.specs import Rule, adhoc_rule
from checker.trace import Trace

from .conftest import COUNTEREXAMPLES, SPECS

LEGACY = "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"
PROVENANCE = graph.Provenance(LEGACY, "checker check --rule legacy --vcpus 2", "0.1.0", "z3")


@pytest.fixture(scope="module")
def legacy_trace(shipped_rules: dict[str, Rule]) -> Trace:
    result = check_property(shipped_rules["legacy"], PROPERTY_BY_NAME["write_tracking"], Options())
    assert result.trace is not None
    return result.trace


def test_one_node_per_step_with_scalar_state(legacy_trace: Trace) -> None:
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    assert list(g.nodes) == list(range(legacy_trace.depth + 1))
    assert list(g.edges) == [(i, i + 1) for i in range(legacy_trace.depth)]
    first, last = g.nodes[0], g.nodes[legacy_trace.depth]
    assert first["spte"] == "0x0000" and first["tlb_vcpu0"] == "none"
    assert last["spte"] == "0x0a00"  # P and HW in the x86 layout
    assert all(isinstance(v, bool | int | str) for n in g.nodes for v in g.nodes[n].values())
    for key in (
        "rule",
        "expression",
        "property",
        "vcpus",
        "depth",
        "checker_version",
        "z3_version",
        "command",
    ):
        assert key in g.graph


def test_edges_carry_operation_vcpu_function_and_decision(legacy_trace: Trace) -> None:
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    protect = g.edges[3, 4]
    assert protect["operation"] == "write_protect" and protect["vcpu"] == 0
    assert protect["kernel_function"] == "spte_write_protect"
    assert (protect["rule_consulted"], protect["rule_flush"], protect["tlb_flush"]) == (
        True,
        False,
        False,
    )
    assert (protect["old_spte"], protect["new_spte"]) == ("0x0e00", "0x0a00")
    assert "vcpu" not in g.edges[2, 3]  # aging runs on the host
    assert g.edges[4, 5]["violation"] and not g.edges[3, 4]["violation"]


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_files_round_trip_and_replay(legacy_trace: Trace, tmp_path: Path, suffix: str) -> None:
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    graph.write_counterexample(g, tmp_path, "t")
    loaded = graph.read_counterexample(tmp_path / f"t{suffix}")
    assert loaded.actions == tuple(s.action for s in legacy_trace.steps)
    assert loaded.states == legacy_trace.states
    assert loaded.prop.name == "write_tracking" and loaded.vcpus == 1
    assert loaded.expression == LEGACY
    rule = adhoc_rule(loaded.expression)
    again = replay(
        System(rule, loaded.paths), "legacy", loaded.prop, SmtTrace(loaded.actions, loaded.states)
    )
    assert again.steps == legacy_trace.steps


def test_writing_twice_gives_the_same_bytes(legacy_trace: Trace, tmp_path: Path) -> None:
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    first = [p.read_bytes() for p in graph.write_counterexample(g, tmp_path / "a", "t")]
    g2 = graph.trace_graph(legacy_trace, PROVENANCE)
    second = [p.read_bytes() for p in graph.write_counterexample(g2, tmp_path / "b", "t")]
    assert first == second


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a counterexample file"),
        ("[1, 2]", "expected a JSON object"),
        ('{"graph": {"schema": "other/9"}, "nodes": [], "edges": []}', "unknown format 'other/9'"),
    ],
)
def test_corrupt_files_are_input_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        graph.read_counterexample(path)


def test_a_file_missing_a_field_is_an_input_error(legacy_trace: Trace, tmp_path: Path) -> None:
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    data = nx.node_link_data(g, edges="edges")
    del data["nodes"][2]["writable"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="malformed"):
        graph.read_counterexample(path)


def test_committed_counterexamples_replay() -> None:
    files = sorted(COUNTEREXAMPLES.rglob("*.json")) + sorted(COUNTEREXAMPLES.rglob("*.graphml"))
    assert files, "no committed counterexamples"
    for path in files:
        loaded = graph.read_counterexample(path)
        rule = adhoc_rule(loaded.expression, loaded.rule_name)
        replay(
            System(rule, loaded.paths),
            loaded.rule_name,
            loaded.prop,
            SmtTrace(loaded.actions, loaded.states),
        )


def test_regenerating_committed_counterexamples_changes_no_byte(tmp_path: Path) -> None:
    """`make counterexamples` must be a no-op on a clean tree."""
    code = main(["check", "--all", "--json", "--specs", str(SPECS), "--out", str(tmp_path)])
    assert code == 1
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(COUNTEREXAMPLES): p.read_bytes()
        for p in COUNTEREXAMPLES.rglob("*")
        if p.is_file()
    }
    assert sorted(fresh) == sorted(committed)
    for name, data in fresh.items():
        assert data == committed[name], f"{name} differs: run 'make counterexamples' and commit"


def test_files_record_the_paths_and_replay_under_them(tmp_path: Path) -> None:
    code = main(
        [
            "check",
            "--rule",
            "new",
            "--profile",
            "v4.10-v5.19",
            "--json",
            "--specs",
            str(SPECS),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 1
    [path] = sorted((tmp_path / "new").glob("dirty_log-*.json"))
    loaded = graph.read_counterexample(path)
    assert loaded.profile == "v4.10-v5.19" and loaded.paths.enable_flush.value == "writable"
    rule = adhoc_rule(loaded.expression, loaded.rule_name)
    replay(System(rule, loaded.paths), "new", loaded.prop, SmtTrace(loaded.actions, loaded.states))
    with pytest.raises(InternalError):  # under the default paths, the trace is not a violation
        replay(System(rule), "new", loaded.prop, SmtTrace(loaded.actions, loaded.states))
