"""Certification's queries are made through z3's C API, and are the very terms z3's
own ``And``/``Or``/``Not``/``Implies`` make: only the cost of making them changed."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
import z3

from checker.engines import parametric
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant, Lemma, Lit, Var
from checker.engines.smt import (
    application,
    conjunction,
    disjunction,
    implication,
    negation,
    truths,
)
from checker.model import System, vocabulary
from checker.model.vocabulary import leaves

#: lemmas of every kind: about the shared state only, one vCPU, two vCPUs
INVARIANT = Invariant.of(
    [
        Lemma(0, (Lit(Var("mmu_writable")), Lit(Var("writable"), False))),
        Lemma(1, (Lit(Var("mmu_writable")), Lit(Var("tlb_writable", 0), False))),
        Lemma(1, (Lit(Var("present")), Lit(Var("tlb_writable", 0), False))),
        Lemma(2, (Lit(Var("tlb_cached", 0), False), Lit(Var("tlb_cached", 1), False))),
    ]
)


def test_the_c_api_terms_are_z3s_own() -> None:
    ctx = z3.Context()
    a, b, c = (z3.Bool(name, ctx=ctx) for name in "abc")
    assert conjunction([a, b, c], ctx).eq(z3.And(a, b, c))
    assert conjunction([a], ctx).eq(z3.And(a))
    assert disjunction([a, b], ctx).eq(z3.Or(a, b))
    assert negation(a, ctx).eq(z3.Not(a))
    assert implication(a, b, ctx).eq(z3.Implies(a, b))
    assert conjunction([a, b], ctx).ctx is ctx


def test_truths_are_what_z3s_eval_gives() -> None:
    """Every leaf and compound term, under models with free and fixed values, as
    ``z3.is_true(model.eval(x, model_completion=True))`` says."""
    ctx = z3.Context()
    a, b, c = (z3.Bool(name, ctx=ctx) for name in "abc")
    terms = [a, b, c, z3.And(a, z3.Not(b)), z3.Or(b, c), z3.Implies(c, a), z3.Xor(a, c)]
    seen = set()
    for fixed in itertools.product((True, False, None), repeat=3):
        solver = z3.Solver(ctx=ctx)
        given = zip((a, b, c), fixed, strict=True)
        solver.add(*(x if v else z3.Not(x) for x, v in given if v is not None))
        assert solver.check() == z3.sat
        model = solver.model()
        want = [z3.is_true(model.eval(x, model_completion=True)) for x in terms]
        assert truths(model, terms) == want, fixed
        seen.add(tuple(want))
    assert len(seen) > 4  # the models differ, so a constant answer fails


def _by_lookup(state: Any, name: str, vcpu: int | None) -> z3.BoolRef:
    names = state.shared_names if vcpu is None else state.vcpu_names
    values = leaves(state.shared if vcpu is None else state.vcpus[vcpu])
    return next(x for n, x in zip(names, values, strict=True) if n == name)


def test_an_invariant_instantiates_as_z3s_own_functions_would(systems: dict[str, System]) -> None:
    for vcpus in (1, 2, 3):
        s = Encoding(systems["new"], vcpus).state(0)
        clauses = []
        for lemma in INVARIANT.lemmas:
            for image in itertools.permutations(range(vcpus), lemma.slots):
                lits = []
                for lit in lemma.literals:
                    slot = lit.var.slot
                    x = _by_lookup(s, lit.var.field, None if slot is None else image[slot])
                    lits.append(x if lit.positive else z3.Not(x))
                clauses.append(z3.Or(*lits))
        assert INVARIANT.instantiate(s).eq(z3.And(*clauses)), vcpus


def test_a_state_finds_each_variable_by_name(systems: dict[str, System]) -> None:
    s = Encoding(systems["new"], 2).state(0)
    found = s.by_name()
    assert len(found) == len(s.variables())
    for name in s.shared_names:
        assert found[name, None].eq(_by_lookup(s, name, None))
    for v in range(2):
        for name in s.vcpu_names:
            assert found[name, v].eq(_by_lookup(s, name, v))


def _clause(vocab: Any, lemma: Lemma, shared: Any, records: list[Any]) -> z3.BoolRef:
    lits = []
    for lit in lemma.literals:
        if lit.var.slot is None:
            names, values = vocab.shared_names, leaves(shared)
        else:
            names, values = vocab.vcpu_names, leaves(records[lit.var.slot])
        x = next(x for n, x in zip(names, values, strict=True) if n == lit.var.field)
        lits.append(x if lit.positive else z3.Not(x))
    return z3.Or(*lits)


def test_the_all_vcpu_invariant_is_z3s_own_terms(systems: dict[str, System]) -> None:
    every = parametric.AllVcpus(systems["new"])
    vocab = every.vocab
    holds, violated = [], []
    for n, lemma in enumerate(INVARIANT.lemmas):
        vs = [z3.Const(f"v{n}_{i}", vocab.sort) for i in range(lemma.slots)]
        body = _clause(vocab, lemma, every.g0, [vocab.record(every.tlb0, v) for v in vs])
        if len(vs) >= 2:
            body = z3.Implies(z3.Distinct(*vs), body)
        holds.append(z3.ForAll(vs, body) if vs else body)
        ws = [vocab.vcpu(f"w{n}_{i}@1") for i in range(lemma.slots)]
        body = z3.Not(_clause(vocab, lemma, every.g1, [every.after(w) for w in ws]))
        violated.append(z3.And(z3.Distinct(*ws), body) if len(ws) >= 2 else body)
    made = parametric._holds(vocab, INVARIANT, every.g0, every.tlb0)
    assert made.eq(z3.And(*holds))
    negated = parametric._violated(vocab, INVARIANT, every.g1, every.after, "1")
    assert negated.eq(z3.Or(*violated))


def test_an_application_is_z3s_own() -> None:
    ctx = z3.Context()
    sort = z3.DeclareSort("V", ctx=ctx)
    f = z3.Function("f", sort, z3.BoolSort(ctx=ctx))
    v = z3.Const("v", sort)
    assert application(f, v, ctx).eq(f(v))


def test_the_walk_asks_once_per_type_whether_it_is_a_record(
    systems: dict[str, System], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Encoding(systems["new"], 2).state(0)
    list(leaves(s.shared))  # every type of the walk seen once
    asked: list[type] = []
    real = dataclasses.is_dataclass

    def counted(x: Any) -> bool:
        asked.append(type(x))
        return real(x)

    monkeypatch.setattr(vocabulary.dataclasses, "is_dataclass", counted)
    assert len(list(leaves(s.shared))) == len(s.shared_names)
    assert len(list(leaves(s.vcpus))) == 2 * len(s.vcpu_names)
    assert asked == []
