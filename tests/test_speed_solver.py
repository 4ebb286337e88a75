"""The certifications of one encoding share a solver (its step relation turned into
clauses once), and each query is decided as on a fresh solver: the answers do not
depend on what was certified before, or whether it held."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from checker.engines import certify as certify_module
from checker.engines import parametric
from checker.engines.certify import certify
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant, Lemma, Lit, Var
from checker.engines.parametric import AllVcpus
from checker.engines.smt import Answer, Budget, check, new_solver
from checker.model import PROPERTY_BY_NAME, Kind, Property, System

COVERED = Lemma(1, (Lit(Var("mmu_writable")), Lit(Var("tlb_writable", 0), False)))
PRESENT = Lemma(1, (Lit(Var("present")), Lit(Var("tlb_writable", 0), False)))
W_MW = Lemma(0, (Lit(Var("mmu_writable")), Lit(Var("writable"), False)))
AT_MOST_ONE = Lemma(2, (Lit(Var("tlb_cached", 0), False), Lit(Var("tlb_cached", 1), False)))

#: (rule, property, invariant): proofs and failures of every query, in an order
#: where each follows others of both kinds
SEQUENCE = [
    ("new", "stale_w", Invariant.of([COVERED, PRESENT, W_MW])),
    ("new", "stale_w", Invariant.of([COVERED, PRESENT])),  # consecution SAT
    ("new", "encoding", Invariant((AT_MOST_ONE,))),
    ("new", "precision", Invariant(())),
    ("new", "stale_w", Invariant.of([COVERED, PRESENT, W_MW])),
    ("legacy", "stale_w", Invariant(())),  # safety SAT
    ("legacy", "write_tracking", Invariant(())),
    ("new", "write_tracking", Invariant(())),
    ("new", "assertion", Invariant.of([W_MW])),
]


def _answer(result: z3.CheckSatResult) -> Answer:
    if result == z3.sat:
        return Answer.SAT
    return Answer.UNSAT if result == z3.unsat else Answer.UNKNOWN


def fresh_certificate(enc: Encoding, prop: Property, invariant: Invariant) -> tuple[Answer, ...]:
    """The three queries, each on a fresh solver of its own, through z3's own API."""
    step = enc.transition(0)
    s, t = step.before, step.after
    now, after = invariant.instantiate(s), invariant.instantiate(t)
    if prop.kind is Kind.STATE:
        bad = enc.bad_state(prop, s)
    else:
        bad = z3.And(step.formula, enc.bad_step(prop, step))
    answers = []
    for query in (
        z3.And(enc.init(s), z3.Not(now)),
        z3.And(now, step.formula, z3.Not(after)),
        z3.And(now, bad),
    ):
        solver = new_solver(Budget(), enc.context)
        solver.add(query)
        answers.append(check(solver))
    return tuple(answers)


def fresh_all_vcpus(every: AllVcpus, prop: Property, invariant: Invariant) -> tuple[Answer, ...]:
    """The three all-vCPU queries, each on a fresh solver of its own."""
    vocab = every.vocab
    now = parametric._holds(vocab, invariant, every.g0, every.tlb0)
    bad = every.bad_state(prop) if prop.kind is Kind.STATE else every.bad_step(prop)
    negated = parametric._violated(vocab, invariant, every.g1, every.after, "1")
    answers = []
    for query in (
        z3.And(every.init, z3.Not(now)),
        z3.And(now, every.step, negated),
        z3.And(now, bad),
    ):
        solver = z3.Solver(ctx=vocab.ctx)
        solver.add(query)
        answers.append(_answer(solver.check()))
    return tuple(answers)


@pytest.mark.parametrize("vcpus", [1, 2, 3])
def test_a_shared_solver_answers_as_a_fresh_one(systems: dict[str, System], vcpus: int) -> None:
    shared = {name: Encoding(systems[name], vcpus) for name in ("new", "legacy")}
    kinds = set()
    for name, prop, invariant in SEQUENCE:
        enc = shared[name]
        once = certify(enc, PROPERTY_BY_NAME[prop], invariant, Budget())
        fresh = fresh_certificate(enc, PROPERTY_BY_NAME[prop], invariant)
        assert (once.initiation, once.consecution, once.safety) == fresh, (name, prop)
        kinds |= {once.initiation, once.consecution, once.safety}
    assert kinds == {Answer.SAT, Answer.UNSAT}


def test_the_encodings_certifications_make_one_solver(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    real = certify_module.new_solver

    def counted(*args: Any) -> Any:
        made.append(args)
        return real(*args)

    monkeypatch.setattr(certify_module, "new_solver", counted)
    enc = Encoding(systems["new"], 2)
    for _, prop, invariant in [s for s in SEQUENCE if s[0] == "new"]:
        certify(enc, PROPERTY_BY_NAME[prop], invariant, Budget())
    assert len(made) == 1


def test_a_solver_that_ran_out_of_budget_is_not_used_again(systems: dict[str, System]) -> None:
    enc = Encoding(systems["new"], 2)
    invariant = Invariant.of([COVERED, PRESENT, W_MW])
    tiny = certify(enc, PROPERTY_BY_NAME["stale_w"], invariant, Budget(rlimit=100))
    assert tiny.unknown
    assert 100 not in certify_module._SHARED[enc]
    assert certify(enc, PROPERTY_BY_NAME["stale_w"], invariant, Budget()).ok


def test_every_vcpu_count_shares_a_solver_and_answers_as_a_fresh_one(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = {name: AllVcpus(systems[name]) for name in ("new", "legacy")}
    made: list[Any] = []
    real = parametric.z3.Solver

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    kinds = set()
    for name, prop, invariant in SEQUENCE:
        monkeypatch.setattr(parametric.z3, "Solver", counted)
        before = len(made)
        once = shared[name].certify(PROPERTY_BY_NAME[prop], invariant, Budget())
        kinds |= {once.initiation, once.consecution, once.safety}
        # one solver per system (a state property's form is checked on one more)
        assert len(made) - before <= (2 if prop in ("stale_w", "encoding") else 1)
        monkeypatch.undo()
        fresh = fresh_all_vcpus(shared[name], PROPERTY_BY_NAME[prop], invariant)
        assert (once.initiation, once.consecution, once.safety) == fresh, (name, prop)
    assert kinds == {Answer.SAT, Answer.UNSAT}
    assert all(len(every._solvers) == 1 for every in shared.values())
