"""BMC: shortest traces, canonical whatever the solver's seed."""

from __future__ import annotations

from typing import Any

import pytest
import z3

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


def _least_by_a_query_per_bit(
    solver: z3.Solver, goal: z3.BoolRef, bits: list[z3.BoolRef]
) -> z3.ModelRef:
    """The least model as defined: each choice bit, most significant first, 0 if a
    query says it can be, given the bits before it."""
    fixed = [goal]
    for bit in bits:
        fixed.append(z3.Not(bit) if solver.check(*fixed, z3.Not(bit)) == z3.sat else bit)
    assert solver.check(*fixed) == z3.sat
    return solver.model()


@pytest.mark.parametrize(
    ("rule", "prop", "vcpus"),
    [("legacy", "write_tracking", 3), ("legacy", "stale_w", 2), ("old", "precision", 2)],
)
def test_the_least_model_is_the_one_a_query_per_bit_finds(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch, rule: str, prop: str, vcpus: int
) -> None:
    """The least model skips the queries whose answer it already has: its choices
    are those a query for every bit makes."""
    compared: list[tuple[list[bool], list[bool]]] = []
    real = bmc._least_model

    def both(solver: z3.Solver, goal: z3.BoolRef, enc: Encoding, *trace: Any) -> z3.ModelRef:
        bits = bmc._choice_bits(enc, *trace)
        solver.push()
        reference = _least_by_a_query_per_bit(solver, goal, bits)
        solver.pop()
        assert solver.check(goal) == z3.sat  # the least model starts from the goal's model
        found = real(solver, goal, enc, *trace)

        def values(model: z3.ModelRef) -> list[bool]:
            return [z3.is_true(model.eval(b, model_completion=True)) for b in bits]

        compared.append((values(found), values(reference)))
        return found

    monkeypatch.setattr(bmc, "_least_model", both)
    result = bmc.shortest_counterexample(
        Encoding(systems[rule], vcpus), PROPERTY_BY_NAME[prop], 10, Budget()
    )
    assert result.answer is Answer.SAT
    ((found, reference),) = compared
    assert found == reference and any(reference)
