"""Boolean algebras the model is written against.

The model (``checker.model``) is written once, as functions over an abstract Boolean
algebra ``Logic[B]``. Interpreting it with :class:`Concrete` (``B = bool``) gives the
pure-Python step function; interpreting it with ``checker.engines.smt.Symbolic``
(``B = z3.BoolRef``) gives the SMT transition relation. That is the whole trick that
keeps the two semantics from drifting apart: there is no second copy of the model.

The algebra is deliberately tiny: constants, negation, n-ary conjunction and
disjunction, if-then-else and equivalence. Anything richer (bit-vectors, integers)
would not have an obvious Python twin.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

B = TypeVar("B")


class Logic(Protocol[B]):
    """A Boolean algebra over values of type ``B``."""

    def const(self, value: bool) -> B: ...

    def not_(self, a: B) -> B: ...

    def and_(self, *xs: B) -> B: ...

    def or_(self, *xs: B) -> B: ...

    def ite(self, cond: B, then: B, other: B) -> B: ...

    def iff(self, a: B, b: B) -> B: ...


class Concrete:
    """``Logic[bool]``: plain Python truth values, no solver involved."""

    def const(self, value: bool) -> bool:
        return value

    def not_(self, a: bool) -> bool:
        return not a

    def and_(self, *xs: bool) -> bool:
        return all(xs)

    def or_(self, *xs: bool) -> bool:
        return any(xs)

    def ite(self, cond: bool, then: bool, other: bool) -> bool:
        return then if cond else other

    def iff(self, a: bool, b: bool) -> bool:
        return a == b


CONCRETE = Concrete()
