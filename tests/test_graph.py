"""Counterexample graphs and files: content, round trips, atomicity, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from checker.cli import main
from checker.engines.bmc import SmtTrace
from checker.engines.certify import replay
from checker.engines.check import Options, check_property
from checker.engines.trace import Trace
from checker.errors import InputError, InternalError
from checker.model import PROPERTY_BY_NAME, System
from checker.rules.specs import Rule, adhoc_rule
from checker.traces import graph

from .conftest import COUNTEREXAMPLES, SPECS

#: the scenarios' folders under counterexamples/
SCENARIOS = tuple(p.stem for p in (SPECS / "scenarios").glob("*.toml"))

#: a committed write-tracking counterexample of the legacy rule (in v3.15 .. v4.3,
#: before 198c74f43f0f's harvest flush)
WRITE_TRACKING = (
    COUNTEREXAMPLES
    / "history"
    / "198c74f43f0f-legacy-write-tracking"
    / "after-write_tracking-1vcpus-v3.15-v4.3-shadow.json"
)

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


def test_nodes_and_edges_carry_labels_for_graph_viewers(legacy_trace: Trace) -> None:
    """Gephi and yEd label nodes and edges from a ``label`` attribute: the step's name."""
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    assert [g.nodes[i]["label"] for i in g.nodes] == [
        "step 0: initial state",
        "step 1: vcpu0 page_fault(host_writable, !write_fault)",
        "step 2: vcpu0 guest_access",
        "step 3: host aging",
        "step 4: vcpu0 write_protect",
        "step 5: vcpu0 guest_write",
    ]
    assert g.edges[2, 3]["label"] == "host aging"
    assert g.edges[3, 4]["label"] == "vcpu0 write_protect"
    text = graph.graphml_text(g)
    for kind in ("node", "edge"):
        assert f'for="{kind}" attr.name="label" attr.type="string"' in text
    assert "<data key=" in text and ">step 4: vcpu0 write_protect</data>" in text


def test_a_counterexample_without_labels_still_reads(legacy_trace: Trace, tmp_path: Path) -> None:
    """Files written before nodes and edges had labels stay readable."""
    g = graph.trace_graph(legacy_trace, PROVENANCE)
    for _, attrs in g.nodes(data=True):
        del attrs["label"]
    for _, _, attrs in g.edges(data=True):
        del attrs["label"]
    [json_path, graphml_path] = graph.write_counterexample(g, tmp_path, "old")
    for path in (json_path, graphml_path):
        loaded = graph.read_counterexample(path)
        assert len(loaded.actions) == legacy_trace.depth


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
            System(rule, loaded.paths, loaded.states[0].shape),
            loaded.rule_name,
            loaded.prop,
            SmtTrace(loaded.actions, loaded.states),
        )


def test_regenerating_committed_counterexamples_changes_no_byte(tmp_path: Path) -> None:
    """`make counterexamples` must be a no-op on a clean tree (``history/`` is the
    history suite's, which test_history checks against 'checker history'; a
    scenario's folder is its own, which test_huge_pages checks against 'checker
    scenario')."""
    code = main(["check", "--all", "--json", "--specs", str(SPECS), "--out", str(tmp_path)])
    assert code == 1
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(COUNTEREXAMPLES): p.read_bytes()
        for p in COUNTEREXAMPLES.rglob("*")
        if p.is_file() and p.relative_to(COUNTEREXAMPLES).parts[0] not in ("history", *SCENARIOS)
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
            "--era",
            "v5.18-v5.19",
            "--mmu",
            "tdp",
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
    assert loaded.era == "v5.18-v5.19/tdp" and loaded.paths.enable_flush.value == "changed"
    assert loaded.paths.mmu.value == "tdp"
    rule = adhoc_rule(loaded.expression, loaded.rule_name)
    replay(System(rule, loaded.paths), "new", loaded.prop, SmtTrace(loaded.actions, loaded.states))
    with pytest.raises(InternalError):  # under the default paths, the trace is not a violation
        replay(System(rule), "new", loaded.prop, SmtTrace(loaded.actions, loaded.states))


HOSTILE_METADATA = [
    ("vcpus", 10**9, "'vcpus' is 1000000000, outside 1..256"),
    ("vcpus", 0, "'vcpus' is 0, outside 1..256"),
    ("depth", 10**12, "'depth' is 1000000000000, outside 0..1000"),
    ("depth", -5, "'depth' is -5, outside 0..1000"),
    ("vcpus", "2", "'vcpus' is not an integer: '2'"),
    ("rule", "legacy\x1b]0;owned\x07", "'rule' holds the control character '\\x1b'"),
    ("rule", "two\nlines", "'rule' holds the control character '\\n'"),
    ("command", "checker \x9b31m", "'command' holds the control character '\\x9b'"),
    ("expression", "is_writable_pte(old_spte)\x1b[2J", "'expression' holds the control"),
]


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
@pytest.mark.parametrize(("key", "value", "message"), HOSTILE_METADATA)
def test_sizes_and_texts_are_checked_before_use(
    tmp_path: Path, suffix: str, key: str, value: object, message: str
) -> None:
    """A crafted vCPU count or depth must be refused, not allocated (a depth of
    10**12 was a MemoryError); a terminal escape or line break in a text refused."""
    source = WRITE_TRACKING.with_suffix(suffix)
    g = graph.read_counterexample(source).graph
    g.graph[key] = value
    path = tmp_path / f"hostile{suffix}"
    path.write_text(graph.node_link_json(g) if suffix == ".json" else graph.graphml_text(g))
    with pytest.raises(InputError) as error:
        graph.read_counterexample(path)
    text = str(error.value)
    # XML 1.0 cannot hold C0 controls at all: its parser refuses them first
    assert message in text or (suffix == ".graphml" and "not well-formed" in text), text


def test_graphml_with_entities_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.graphml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="directed">'
        '<node id="&b;"/></graph></graphml>'
    )
    with pytest.raises(InputError, match=r"GraphML with a DOCTYPE or ENTITY"):
        graph.read_counterexample(path)


@pytest.mark.parametrize("failing", ["rename", "write"])
def test_a_failed_second_file_leaves_neither(
    legacy_trace: Trace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A full disk while writing the .graphml used to leave the .json alone; now
    both files are written, or neither (and no temporary)."""
    import os

    g = graph.trace_graph(legacy_trace, PROVENANCE)
    renames: list[str] = []
    writes: list[int] = []
    real_replace, real_fdopen = os.replace, os.fdopen

    def replace(source: str, target: str) -> None:
        renames.append(target)
        if failing == "rename" and len(renames) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        writes.append(fd)
        if failing == "write" and len(writes) == 2:
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(InputError, match=r"t\.graphml: cannot write: No space left on device"):
        graph.write_counterexample(g, tmp_path, "t")
    assert list(tmp_path.iterdir()) == []
