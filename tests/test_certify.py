"""Certification rejects what is not inductive; replay rejects what did not happen."""

from __future__ import annotations

import dataclasses

import pytest

from checker.engines import semantics
from checker.engines.bmc import SmtTrace
from checker.engines.certify import certify, replay
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant, Lemma, Lit, Var
from checker.engines.smt import Answer, Budget
from checker.errors import InternalError
from checker.model import PROPERTY_BY_NAME, System, Tlb

STALE_W = PROPERTY_BY_NAME["stale_w"]
COVERED = Lemma(1, (Lit(Var("mmu_writable")), Lit(Var("tlb_writable", 0), False)))
PRESENT = Lemma(1, (Lit(Var("present")), Lit(Var("tlb_writable", 0), False)))
W_MW = Lemma(0, (Lit(Var("mmu_writable")), Lit(Var("writable"), False)))


def test_the_real_invariant_certifies(systems: dict[str, System]) -> None:
    cert = certify(
        Encoding(systems["new"], 3), STALE_W, Invariant.of([COVERED, PRESENT, W_MW]), Budget()
    )
    assert cert.ok and cert.vcpus == 3


def test_the_property_alone_is_not_inductive(systems: dict[str, System]) -> None:
    # without W => MW, a walk of a writable, non-MMU-writable SPTE breaks it
    cert = certify(Encoding(systems["new"], 2), STALE_W, Invariant.of([COVERED, PRESENT]), Budget())
    assert cert.consecution is Answer.SAT and not cert.ok


def test_true_does_not_prove_a_violated_property(systems: dict[str, System]) -> None:
    cert = certify(Encoding(systems["legacy"], 2), STALE_W, Invariant(()), Budget())
    assert cert.initiation is Answer.UNSAT and cert.safety is Answer.SAT and not cert.ok


def test_an_invariant_false_initially_is_rejected(systems: dict[str, System]) -> None:
    present = Invariant.of([Lemma(0, (Lit(Var("present")),))])
    cert = certify(Encoding(systems["new"], 2), STALE_W, present, Budget())
    assert cert.initiation is Answer.SAT


def _legacy_trace(system: System) -> SmtTrace:
    actions = (
        semantics.Action("page_fault", 0, (("host_writable", True),)),
        semantics.Action("guest_access", 1),
        semantics.Action("aging"),
        semantics.Action("write_protect", 0),
    )
    state = semantics.initial_states(2)[0]
    states = [state]
    for a in actions:
        step = semantics.step(system, state, a)
        assert step is not None
        state = step.after
        states.append(state)
    return SmtTrace(actions, tuple(states))


def test_a_genuine_trace_replays(systems: dict[str, System]) -> None:
    trace = replay(systems["legacy"], "legacy", STALE_W, _legacy_trace(systems["legacy"]))
    assert trace.depth == 4 and trace.states[-1].tlb(1) is Tlb.WRITABLE


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            lambda t: dataclasses.replace(t, states=(t.states[1], *t.states[1:])),
            "not an initial state",
        ),
        (
            lambda t: dataclasses.replace(
                t,
                states=(
                    *t.states[:2],
                    semantics.with_vcpus(t.states[2], (t.states[0].vcpus[0],) * 2),
                    *t.states[3:],
                ),
            ),
            "step 2 (guest_access) leads elsewhere",
        ),
        (
            lambda t: dataclasses.replace(t, actions=(semantics.Action("zap"), *t.actions[1:])),
            "step 1 (zap) is not enabled",
        ),
        (
            lambda t: dataclasses.replace(t, actions=t.actions[:3], states=t.states[:4]),
            "does not violate",
        ),
    ],
)
def test_tampered_traces_do_not_replay(
    systems: dict[str, System], tamper: object, message: str
) -> None:
    system = systems["legacy"]
    with pytest.raises(InternalError) as info:
        replay(system, "legacy", STALE_W, tamper(_legacy_trace(system)))  # type: ignore[operator]
    assert message in str(info.value)


def test_a_trace_under_another_rule_does_not_replay(systems: dict[str, System]) -> None:
    with pytest.raises(InternalError, match="leads elsewhere"):
        replay(systems["new"], "new", STALE_W, _legacy_trace(systems["legacy"]))
