"""Formulas: evaluation, rendering, and validity decided on truth tables."""

from __future__ import annotations

from itertools import product

from hypothesis import given

from checker.model import SPTE_FIELDS, Spte
from checker.model.logic import CONCRETE
from checker.rules import formula as F

from .test_encode import formulas


def brute_valid(f: F.Formula) -> bool:
    names = sorted(F.atoms(f), key=repr)
    for bits in product((False, True), repeat=len(names)):
        value = dict(zip(names, bits, strict=True))

        def spte(which: F.Which, value: dict[object, bool] = value) -> Spte[bool]:
            return Spte(**{fd: value.get(F.Bit(which, fd), False) for fd in SPTE_FIELDS})

        if not F.evaluate(f, CONCRETE, spte("old"), spte("new"), value.get(F.AdEnabled(), False)):
            return False
    return True


@given(f=formulas)
def test_valid_agrees_with_brute_force(f: F.Formula) -> None:
    assert F.valid(f) == brute_valid(f)
    assert F.valid(F.or_(f, F.not_(f)))
    assert F.equivalent(f, F.not_(F.not_(f)))


def test_render_uses_the_domain_names() -> None:
    old_mw, new_w = F.Bit("old", "mmu_writable"), F.Bit("new", "writable")
    assert F.render(F.and_(old_mw, F.not_(new_w))) == "MW(old) && !W(new)"
    assert F.render(F.not_(F.or_(old_mw, F.AdEnabled()))) == "!(MW(old) || AD)"
