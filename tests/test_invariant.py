"""Lemma schemas: extraction from z3, symmetry, rendering, instantiation."""

from __future__ import annotations

import pytest
import z3

from checker.engines.encode import Encoding, SymState
from checker.engines.invariant import Invariant, Lemma, Lit, NotAClause, Var, from_z3
from checker.model import System
from checker.rules.specs import adhoc_rule


def state_vars(vcpus: int, tag: str) -> SymState:
    system = System(adhoc_rule("is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"))
    return Encoding(system, vcpus).state_vars(tag)


def test_from_z3_merges_symmetric_copies() -> None:
    s = state_vars(2, "0")
    stale = [
        z3.Or(z3.Not(t.writable), s.shared.sptes[0].mmu_writable)
        for t in (v.tlbs[0] for v in s.vcpus)
    ]
    inv = from_z3(
        z3.And(*stale, z3.Or(z3.Not(s.shared.sptes[0].writable), s.shared.sptes[0].mmu_writable)), s
    )
    assert inv.lemmas == (
        Lemma(0, (Lit(Var("mmu_writable")), Lit(Var("writable"), False))),
        Lemma(1, (Lit(Var("mmu_writable")), Lit(Var("tlb_writable", 0), False))),
    )
    assert inv.render() == [
        "writable => mmu_writable",
        "forall v: tlb_writable[v] => mmu_writable",
    ]


def test_two_slot_lemmas_are_canonical_up_to_renaming() -> None:
    s = state_vars(3, "0")
    a, b = s.vcpus[0].tlbs[0], s.vcpus[2].tlbs[0]
    one = from_z3(z3.Or(z3.Not(a.writable), z3.Not(b.cached)), s)
    other = from_z3(z3.Or(z3.Not(b.writable), z3.Not(a.cached)), s)
    assert one == other
    assert one.lemmas[0].slots == 2
    assert one.render() == ["forall v, w: !(tlb_cached[v] && tlb_writable[w])"]


def test_lemmas_with_the_same_premise_render_as_one_line() -> None:
    s = state_vars(1, "0")
    t, spte = s.vcpus[0].tlbs[0], s.shared.sptes[0]
    inv = from_z3(
        z3.And(
            z3.Or(z3.Not(t.writable), spte.present), z3.Or(z3.Not(t.writable), spte.mmu_writable)
        ),
        s,
    )
    assert inv.render() == ["forall v: tlb_writable[v] => mmu_writable && present"]


def test_instantiate_covers_every_injective_slot_map() -> None:
    lemma = Lemma(2, (Lit(Var("tlb_cached", 0), False), Lit(Var("tlb_cached", 1), False)))
    formula = Invariant((lemma,)).instantiate(state_vars(3, "x"))
    assert len(formula.children()) == 3 * 2
    assert z3.is_true(z3.simplify(Invariant((lemma,)).instantiate(state_vars(1, "y"))))


def test_spte_and_tlb_fields_of_the_same_name_sort() -> None:
    s = state_vars(2, "0")
    clause = z3.Or(
        z3.Not(s.vcpus[1].tlbs[0].writable), s.shared.sptes[0].writable, s.vcpus[1].tlbs[0].cached
    )
    assert from_z3(clause, s).render() == ["forall v: tlb_writable[v] => writable || tlb_cached[v]"]


def test_non_clauses_are_refused() -> None:
    s = state_vars(1, "0")
    with pytest.raises(NotAClause):
        from_z3(
            z3.Or(
                z3.And(s.shared.sptes[0].present, s.shared.sptes[0].writable),
                s.shared.frames[0].dirty_bit,
            ),
            s,
        )


def test_true_is_the_empty_invariant() -> None:
    inv = from_z3(z3.BoolVal(True), state_vars(2, "0"))
    assert inv.lemmas == () and inv.render() == ["true"]
