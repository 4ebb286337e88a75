"""The explicit engine works each step out once: a stepper keeps every move it made,
and a session's explorations at 1 to N vCPUs share one stepper. Only the cost
changes: the answers are the step function's (``tests/test_explicit.py``,
``tests/test_agreement.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from checker.engines import explicit
from checker.engines.check import Session
from checker.model import PROPERTIES, System


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the explicit engine applies an operation, from now on."""
    calls = [0]
    real = explicit.apply

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(explicit, "apply", counted)
    return calls


def test_a_session_explores_with_one_stepper(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = systems["new"]
    calls = _counting(monkeypatch)
    alone = 0
    for vcpus in (1, 2):
        before = calls[0]
        explicit.check_all(system, PROPERTIES, vcpus)
        alone += calls[0] - before
    calls[0] = 0
    session = Session(system)
    shared = {n: session.explored(n) for n in (1, 2)}
    # the windows met with one vCPU are met again with two: not worked out twice
    assert 0 < calls[0] < alone
    for n, results in shared.items():
        assert {k: r.violated for k, r in results.items()} == {
            k: r.violated for k, r in explicit.check_all(system, PROPERTIES, n).items()
        }


def test_a_stepper_works_each_window_out_once(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = systems["legacy"]
    stepper = explicit.Stepper(system)
    first, _ = explicit.explore(system, 2, stepper=stepper)
    calls = _counting(monkeypatch)
    again, _ = explicit.explore(system, 2, stepper=stepper)
    assert calls[0] == 0  # every step of the second exploration was kept
    assert again.parent.keys() == first.parent.keys() and again.steps == first.steps
