"""The smallest C flush condition over the kernel's helpers, given its truth table.

A rule is asked about (old SPTE, new SPTE, A/D) classes; synthesis says which
classes must flush, which must not, and leaves every other one free. This finds a
C expression over the kernel's own helpers (``is_mmu_writable_spte(old_spte)``,
``is_dirty_spte(new_spte)`` ...) that gives every constrained class its answer:

1. The helpers (:data:`HELPERS`, the kernel's names first, raw mask tests last)
   are read as Boolean variables; each helper's meaning is its C text parsed by
   :mod:`checker.rules.cexpr`, so the expression means what the checker reads.
2. The fewest helpers that tell every flushing class from every non-flushing one
   are chosen (smallest sets first, in the helpers' order).
3. Over those, sympy's ``SOPform``/``POSform`` (Quine-McCluskey, with every
   valuation no constrained class has as a don't-care) give the minimal sum of
   products and product of sums; the one with fewer literals is kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar

from checker.model import Spte
from checker.model.logic import CONCRETE
from checker.rules import formula as F


class Case(Protocol):
    """What a rule is asked about (``checker.engines.diff.UpdateClass``)."""

    @property
    def old(self) -> Spte[bool]: ...
    @property
    def new(self) -> Spte[bool]: ...
    @property
    def ad_enabled(self) -> bool: ...


C = TypeVar("C", bound=Case)

#: the helpers a derived rule may use, most readable first. The old SPTE is always
#: present where the rule is asked (a non-present one needs no flush), so its
#: presence is left out.
HELPERS: tuple[str, ...] = (
    "is_mmu_writable_spte(old_spte)",
    "is_mmu_writable_spte(new_spte)",
    "is_writable_pte(old_spte)",
    "is_writable_pte(new_spte)",
    "is_shadow_present_pte(new_spte)",
    "is_access_track_spte(old_spte)",
    "is_access_track_spte(new_spte)",
    "is_accessed_spte(old_spte)",
    "is_accessed_spte(new_spte)",
    "is_dirty_spte(old_spte)",
    "is_dirty_spte(new_spte)",
    "spte_ad_enabled(old_spte)",
    "(old_spte & shadow_host_writable_mask)",
    "(new_spte & shadow_host_writable_mask)",
    "(old_spte & shadow_accessed_mask)",
    "(new_spte & shadow_accessed_mask)",
    "(old_spte & shadow_dirty_mask)",
    "(new_spte & shadow_dirty_mask)",
)

#: the most helpers a minimal separating set is searched among (2**18 subsets
#: would be too many; a flush condition over more than this many is not readable)
MAX_VARIABLES = 6


class Unseparable(ValueError):
    """Two classes need different answers but every helper agrees on them."""


@dataclass(frozen=True)
class Minimised:
    """A minimal C expression, and how it was found."""

    expression: str
    #: the helpers it is written over
    helpers: tuple[str, ...]
    #: "sum of products" or "product of sums"
    form: str
    literals: int


@cache
def helper_formula(text: str) -> F.Formula:
    from checker.rules.cexpr import Origin, parse

    return parse(text, Origin("<helper>"))


def valuation(cls: Case, helpers: tuple[str, ...] = HELPERS) -> tuple[bool, ...]:
    return tuple(
        bool(F.evaluate(helper_formula(h), CONCRETE, cls.old, cls.new, cls.ad_enabled))
        for h in helpers
    )


def minimise(required: Mapping[C, bool]) -> Minimised:
    """The smallest expression true on the classes mapped to True and false on
    those mapped to False; :class:`Unseparable` if no helper tells two apart."""
    rows = {cls: valuation(cls) for cls in required}
    on = {rows[c] for c, v in required.items() if v}
    off = {rows[c] for c, v in required.items() if not v}
    clash = on & off
    if clash:
        a = next(c for c, v in required.items() if v and rows[c] in clash)
        b = next(c for c, v in required.items() if not v and rows[c] == rows[a])
        raise Unseparable(f"{a} must flush and {b} must not, and no helper tells them apart")
    if not on:
        return Minimised("false", (), "constant", 0)
    if not off:
        return Minimised("true", (), "constant", 0)
    key = (frozenset(on), frozenset(off))
    found = _FOUND.get(key)
    if found is None:
        found = _FOUND[key] = _smallest(on, off)
    return found


#: what :func:`minimise` found, by the helpers' values on the classes that must
#: flush and those that must not (eras often constrain the same classes alike)
_FOUND: dict[tuple[frozenset[tuple[bool, ...]], frozenset[tuple[bool, ...]]], Minimised] = {}


def _smallest(on: set[tuple[bool, ...]], off: set[tuple[bool, ...]]) -> Minimised:
    """Steps 2 and 3: over the fewest helpers, the form with the fewest literals."""
    best: Minimised | None = None
    for size in range(1, min(MAX_VARIABLES, len(HELPERS)) + 1):
        for chosen in itertools.combinations(range(len(HELPERS)), size):
            on_s = {tuple(r[i] for i in chosen) for r in on}
            off_s = {tuple(r[i] for i in chosen) for r in off}
            if on_s & off_s:
                continue
            found = _minimal(tuple(HELPERS[i] for i in chosen), on_s, off_s)
            if best is None or found.literals < best.literals:
                best = found
        if best is not None:
            return best
    raise Unseparable(f"more than {MAX_VARIABLES} helpers are needed to tell the classes apart")


def preload() -> None:
    """Import sympy now (about half a second): before forking, so that every
    process has it without importing it again."""
    import sympy.logic  # noqa: F401


def _minimal(
    helpers: tuple[str, ...], on: set[tuple[bool, ...]], off: set[tuple[bool, ...]]
) -> Minimised:
    from sympy import symbols
    from sympy.logic import POSform, SOPform

    names = symbols(f"h0:{len(helpers)}")
    every = set(itertools.product((False, True), repeat=len(helpers)))
    dontcares = [list(map(int, r)) for r in sorted(every - on - off)]
    minterms = [list(map(int, r)) for r in sorted(on)]
    sop = SOPform(names, minterms, dontcares)
    pos = POSform(names, minterms, dontcares)
    forms = [(_count(sop), "sum of products", sop), (_count(pos), "product of sums", pos)]
    literals, form, expr = min(forms, key=lambda x: (x[0], x[1] != "sum of products"))
    return Minimised(_c(expr, helpers), helpers, form, literals)


def _count(expr: Any) -> int:
    from sympy import Not, Symbol

    if isinstance(expr, Symbol | Not):
        return 1
    return sum(_count(a) for a in expr.args)


def _c(expr: Any, helpers: tuple[str, ...]) -> str:
    """``expr`` as C, each variable spelt as its helper."""
    from sympy import And, Not, Or, Symbol
    from sympy.logic.boolalg import BooleanFalse, BooleanTrue

    def go(e: Any, parent: str) -> str:
        if isinstance(e, BooleanTrue):
            return "true"
        if isinstance(e, BooleanFalse):
            return "false"
        if isinstance(e, Symbol):
            return helpers[int(e.name[1:])]
        if isinstance(e, Not):
            return "!" + go(e.args[0], "!")
        if isinstance(e, And):
            text = " && ".join(go(a, "&&") for a in _ordered(e.args))
            return f"({text})" if parent == "!" else text
        if isinstance(e, Or):
            text = " || ".join(go(a, "||") for a in _ordered(e.args))
            return f"({text})" if parent in ("!", "&&") else text
        raise TypeError(f"unexpected {e!r}")

    return go(expr, "")


def _ordered(args: Any) -> list[Any]:
    """Operands in the helpers' order (sympy orders them its own way)."""
    from sympy import Symbol

    def key(e: Any) -> tuple[int, str]:
        symbols = sorted(int(s.name[1:]) for s in e.atoms(Symbol))
        return (symbols[0] if symbols else -1, str(e))

    return sorted(args, key=key)
