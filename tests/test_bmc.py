"""BMC: shortest traces, canonical whatever the solver's seed."""

from __future__ import annotations

import pytest

from checker.engines import bmc, smt
from checker.engines.encode import Encoding
from checker.engines.smt import Answer, Budget
from checker.model import PROPERTY_BY_NAME, System


def labels(result: bmc.BmcResult) -> list[tuple[str, int | None]]:
    assert result.trace is not None
    return [(a.label, a.vcpu) for a in result.trace.actions]


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_counterexample_does_not_depend_on_the_seed(
    systems: dict[str, System], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smt, "SEED", seed)
    result = bmc.shortest_counterexample(
        Encoding(systems["legacy"], 3), PROPERTY_BY_NAME["write_tracking"], 10, Budget()
    )
    assert result.answer is Answer.SAT and result.depth == 5
    assert labels(result) == [
        ("page_fault(host_writable, !write_fault)", 0),
        ("guest_access", 0),
        ("aging", None),
        ("write_protect", 0),
        ("guest_write", 0),
    ]


def test_a_holding_property_has_no_trace_within_the_bound(systems: dict[str, System]) -> None:
    result = bmc.shortest_counterexample(
        Encoding(systems["new"], 2), PROPERTY_BY_NAME["stale_w"], 6, Budget()
    )
    assert result.answer is Answer.UNSAT and result.trace is None and result.depth == 6


def test_an_exhausted_budget_is_unknown(systems: dict[str, System]) -> None:
    result = bmc.shortest_counterexample(
        Encoding(systems["legacy"], 2), PROPERTY_BY_NAME["stale_w"], 10, Budget(rlimit=50)
    )
    assert result.answer is Answer.UNKNOWN and "canceled" in result.reason
