"""Loading a counterexample for viewing: parse, replay, and the graph it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker import counterexample, graph
from checker.errors import InputError

from .conftest import COUNTEREXAMPLES


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_a_committed_file_loads_replayed_with_its_provenance(suffix: str) -> None:
    path = COUNTEREXAMPLES / "legacy" / f"write_tracking-1vcpus{suffix}"
    cx = counterexample.load(path)
    assert cx.trace.depth == 5 and cx.trace.prop.name == "write_tracking"
    assert cx.trace.rule_name == "legacy" and cx.source == str(path)
    assert cx.provenance.command == "checker check --rule legacy --vcpus 1"
    assert cx.provenance.expression.startswith("is_writable_pte(old_spte)")
    assert cx.provenance.checker_version and cx.provenance.z3_version


def test_its_graph_is_the_file_it_was_read_from() -> None:
    path = COUNTEREXAMPLES / "old" / "precision-1vcpus.json"
    assert graph.node_link_json(counterexample.load(path).graph()) == path.read_text()


def test_a_file_whose_trace_does_not_replay_is_an_input_error(tmp_path: Path) -> None:
    data = json.loads((COUNTEREXAMPLES / "old" / "precision-1vcpus.json").read_text())
    data["nodes"][2]["writable"] = True  # a state the step function does not reach
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"edited\.json: .*failed to replay.*regenerate"):
        counterexample.load(path)


def test_a_file_whose_expression_does_not_parse_is_an_input_error(tmp_path: Path) -> None:
    data = json.loads((COUNTEREXAMPLES / "old" / "precision-1vcpus.json").read_text())
    data["graph"]["expression"] = "is_writable_pte(old_spte) &&"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="its rule expression does not parse"):
        counterexample.load(path)
