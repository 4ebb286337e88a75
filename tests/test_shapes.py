"""Traces of a model with several gfns and SPTEs: found, written, read back, shown.

Every file format records the shape (``gfns``, ``spte_of``) and the state by the
vocabulary's names, so a trace of two gfns replays from its file like any other;
the views give each SPTE, gfn and TLB entry its own column. A file of an earlier
format is refused with one line naming its version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from checker.cli import cli
from checker.engines.check import Options, Session, check_property
from checker.engines.trace import Trace
from checker.model import FRAME_FIELDS, PROPERTY_BY_NAME, SLOT_FIELDS, Shape, System
from checker.rules.specs import Rule
from checker.traces import itf, load, view
from checker.traces.counterexample import Counterexample
from checker.traces.graph import Provenance, write_counterexample
from checker.traces.view import GFN_FLAGS

from .conftest import ROOT


def two_gfn_trace(rules: dict[str, Rule]) -> Trace:
    """legacy's stale-W violation, with two gfns of a 4K SPTE each."""
    rule = rules["legacy"]
    options = Options(vcpus=1, shape=Shape(gfns=2))
    session = Session(System(rule, options.paths, options.shape))
    result = check_property(rule, PROPERTY_BY_NAME["stale_w"], options, session)
    assert result.trace is not None
    return result.trace


@pytest.fixture(scope="module")
def counterexample(shipped_rules: dict[str, Rule]) -> Counterexample:
    trace = two_gfn_trace(shipped_rules)
    provenance = Provenance(
        shipped_rules["legacy"].expression, "checker check --rule legacy", "t", "z"
    )
    return Counterexample(trace, provenance)


def test_the_trace_names_its_gfns(counterexample: Counterexample) -> None:
    trace = counterexample.trace
    assert trace.initial.shape == Shape(gfns=2)
    labels = [s.action.label for s in trace.steps]
    assert any("@gfn" in label for label in labels), labels
    # slot-wide operations carry no gfn
    assert all("@gfn" not in label for label in labels if label.startswith("enable_dirty"))


@pytest.mark.parametrize("suffix", ["json", "graphml"])
def test_graph_files_round_trip(
    counterexample: Counterexample, tmp_path: Path, suffix: str
) -> None:
    write_counterexample(counterexample.graph(), tmp_path, "two")
    meta = json.loads((tmp_path / "two.json").read_text())["graph"]
    assert (meta["gfns"], meta["spte_of"], meta["schema"]) == (2, "0,1", "checker.counterexample/4")
    again = load.load(tmp_path / f"two.{suffix}")
    assert again.trace == counterexample.trace
    nodes = json.loads((tmp_path / "two.json").read_text())["nodes"]
    assert {"writable[0]", "writable[1]", "dirty_bit[1]", "tlb_vcpu0[1]", "spte[1]"} <= set(
        nodes[0]
    )


def test_itf_round_trips(counterexample: Counterexample, tmp_path: Path) -> None:
    path = tmp_path / "two.itf.json"
    path.write_text(itf.itf_text(counterexample))
    document = json.loads(path.read_text())
    assert document["#meta"]["checker"]["gfns"] == 2
    assert len(document["states"][0]["sptes"]["#map"]) == 2
    assert load.load(path).trace == counterexample.trace


def test_the_view_has_a_column_per_spte_gfn_and_tlb_entry(counterexample: Counterexample) -> None:
    table = view.step_table(counterexample.trace, counterexample.provenance.expression)
    headers = [c.header for c in table.columns]
    for header in ["SPTE0", "SPTE1", "x86:0", "EPT:1", "tlb0.0", "tlb0.1", "gfn0", "gfn1", "slot"]:
        assert header in headers, headers
    assert "gfn" not in headers
    items = dict(view.state_items(counterexample.trace.states[-1]))
    assert {"spte0", "spte1", "tlb0.0", "tlb0.1", "gfn0", "gfn1", "slot"} == set(items)


def test_show_and_export_read_a_two_gfn_file(
    counterexample: Counterexample, tmp_path: Path
) -> None:
    write_counterexample(counterexample.graph(), tmp_path, "two")
    shown = CliRunner().invoke(cli, ["show", str(tmp_path / "two.json")])
    assert shown.exit_code == 0, shown.output
    assert "SPTE1" in shown.output and "@gfn" in shown.output
    exported = CliRunner().invoke(cli, ["export", str(tmp_path / "two.json"), "--format", "dot"])
    assert exported.exit_code == 0, exported.output
    assert "SPTE1" in exported.output


def test_a_file_of_an_earlier_format_is_refused_by_its_version(tmp_path: Path) -> None:
    committed = ROOT / "counterexamples" / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json"
    data = json.loads(committed.read_text())
    data["graph"]["schema"] = "checker.counterexample/1"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    shown = CliRunner().invoke(cli, ["show", str(old)])
    assert shown.exit_code == 2
    [line] = shown.stderr.strip().splitlines()
    assert "format checker.counterexample/1 is from an earlier checker" in line
    assert "this one reads checker.counterexample/4" in line


def test_the_view_names_every_flag_of_the_vocabulary() -> None:
    """Each memslot and gfn field has a name and a meaning in the view (the
    configuration, ad_enabled and pml, is the title's)."""
    assert set(GFN_FLAGS) == (set(SLOT_FIELDS) - {"ad_enabled", "pml"}) | set(FRAME_FIELDS)
