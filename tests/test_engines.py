"""The SMT and explicit engines share no solver code; they must agree on everything.

For every rule in specs/ (under every era) at 1-3 vCPUs, and for random rules
(Boolean functions of the old and new SPTE bits): the same verdict for each
property, and for a violation the same shortest length with the same (fewest)
number of vCPUs. A disagreement prints both answers, traces included.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines.check import (
    Engine,
    EngineDisagreement,
    Options,
    PropertyResult,
    Session,
    check_property,
)
from checker.model import PROPERTIES, Paths, System
from checker.rules import formula as F
from checker.rules.specs import Rule, load_eras

from .conftest import SPECS, one_gfn_eras
from .test_encode import formulas


def answer(r: PropertyResult) -> str:
    if r.trace is None:
        return r.verdict.value
    steps = ", ".join(
        s.action.label + ("" if s.action.vcpu is None else f"@vcpu{s.action.vcpu}")
        for s in r.trace.steps
    )
    return f"{r.verdict.value} in {r.trace.depth} steps, {r.trace.vcpus} vCPUs: {steps}"


#: one session per shipped rule and paths in this process, as one 'check' run has
#: one per rule: its explicit explorations (each vCPU count's, and the fewer vCPUs a
#: violation's count goes down to) and its encodings made once, shared by the tests
#: of each vCPU count
_SESSIONS: dict[tuple[str, object, Paths], Session] = {}


def session_of(rule: Rule, paths: Paths) -> Session:
    if not isinstance(rule, Rule):
        return Session(System(rule, paths))  # a random rule: its own
    key = (rule.name, rule.formula, paths)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session(System(rule, paths))
    return _SESSIONS[key]


def agree(rule: Rule, options: Options) -> None:
    session = session_of(rule, options.paths)
    for prop in PROPERTIES:
        smt = check_property(rule, prop, _with(options, Engine.SMT), session)
        exp = check_property(rule, prop, _with(options, Engine.EXPLICIT), session)
        assert smt.summary == exp.summary, (
            f"{rule.name}/{prop.name} at {options.vcpus} vCPUs:\n"
            f"  smt:      {answer(smt)}\n  explicit: {answer(exp)}"
        )


def _with(options: Options, engine: Engine) -> Options:
    import dataclasses

    return dataclasses.replace(options, engine=engine)


@pytest.mark.parametrize("vcpus", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_every_spec_rule_agrees(shipped_rules: dict[str, Rule], vcpus: int) -> None:
    for rule in shipped_rules.values():
        agree(rule, Options(vcpus=vcpus))


@pytest.mark.slow
@pytest.mark.parametrize("era", sorted(one_gfn_eras()))
def test_every_spec_rule_agrees_in_every_era(shipped_rules: dict[str, Rule], era: str) -> None:
    # one vCPU: the SMT proofs are for every number of vCPUs whatever N, and the
    # explicit engine at 2 vCPUs in every era is the SPIN referee's comparison
    for paths in load_eras(SPECS)[era].paths.values():
        for rule in shipped_rules.values():
            agree(rule, Options(vcpus=1, paths=paths))


class RandomRule:
    """A rule given by a formula: any Boolean function of the old/new SPTE bits."""

    def __init__(self, f: F.Formula) -> None:
        self.formula = f
        self.name = "random"
        self.expression = F.render(f)

    def decide(self, logic, old, new, ad_enabled):  # type: ignore[no-untyped-def]
        return F.evaluate(self.formula, logic, old, new, ad_enabled)


@pytest.mark.slow
@settings(max_examples=24 if os.environ.get("CI") else 12)
@given(f=formulas, vcpus=st.integers(1, 2))
def test_random_rules_agree(f: F.Formula, vcpus: int) -> None:
    agree(RandomRule(f), Options(vcpus=vcpus))  # type: ignore[arg-type]


def test_engine_all_fails_loudly_on_disagreement(
    shipped_rules: dict[str, Rule], monkeypatch: pytest.MonkeyPatch
) -> None:
    from checker.engines import check

    real = check._explicit

    def lying(*args: object) -> PropertyResult:
        result = real(*args)  # type: ignore[arg-type]
        return PropertyResult(result.prop, check.Verdict.HOLDS, "explicit")

    monkeypatch.setattr(check, "_explicit", lying)
    with pytest.raises(EngineDisagreement) as info:
        check_property(shipped_rules["legacy"], PROPERTIES[0], Options(engine=Engine.ALL))
    message = str(info.value)
    assert "smt says violated in 4 steps with 1 vCPU: page_fault" in message
    assert "explicit says holds" in message
    assert info.value.exit_code == 4
