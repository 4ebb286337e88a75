"""A flush rule's meaning: a Boolean formula over the old and new SPTE.

This is what a C expression (``checker.rules.cexpr``) translates to, and what both
semantics evaluate: :func:`evaluate` works in any ``Logic``, so the same formula
decides a concrete step and builds the SMT transition relation.

Atoms are the model's SPTE fields of the old or new SPTE (:class:`Bit`) and the
gfn's A/D configuration (:class:`AdEnabled`). Kernel helpers such as
``is_dirty_spte`` are not atoms: the translator expands them into these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from checker.model import SPTE_FIELDS, Spte
from checker.model.logic import Logic

if TYPE_CHECKING:
    from collections.abc import Callable

B = TypeVar("B")

Which = Literal["old", "new"]


@dataclass(frozen=True, order=True)
class Const:
    """A constant: ``true`` or ``false``."""

    value: bool


@dataclass(frozen=True, order=True)
class Bit:
    """Field ``field`` of the old or new SPTE."""

    spte: Which
    field: str

    def __post_init__(self) -> None:
        if self.field not in SPTE_FIELDS:
            raise ValueError(f"unknown SPTE field {self.field!r}")


@dataclass(frozen=True, order=True)
class AdEnabled:
    """``spte_ad_enabled()``: the MMU uses hardware Accessed/Dirty bits."""


@dataclass(frozen=True)
class Not:
    """The negation of ``arg``."""

    arg: Formula


@dataclass(frozen=True)
class And:
    """The conjunction of ``args``."""

    args: tuple[Formula, ...]


@dataclass(frozen=True)
class Or:
    """The disjunction of ``args``."""

    args: tuple[Formula, ...]


Formula = Const | Bit | AdEnabled | Not | And | Or

TRUE = Const(True)
FALSE = Const(False)


def not_(f: Formula) -> Formula:
    if isinstance(f, Const):
        return Const(not f.value)
    if isinstance(f, Not):
        return f.arg
    return Not(f)


def and_(*fs: Formula) -> Formula:
    args: list[Formula] = []
    for f in fs:
        if f == FALSE:
            return FALSE
        if f == TRUE:
            continue
        args.extend(f.args if isinstance(f, And) else (f,))
    if not args:
        return TRUE
    return args[0] if len(args) == 1 else And(tuple(args))


def or_(*fs: Formula) -> Formula:
    args: list[Formula] = []
    for f in fs:
        if f == TRUE:
            return TRUE
        if f == FALSE:
            continue
        args.extend(f.args if isinstance(f, Or) else (f,))
    if not args:
        return FALSE
    return args[0] if len(args) == 1 else Or(tuple(args))


def iff(a: Formula, b: Formula) -> Formula:
    return or_(and_(a, b), and_(not_(a), not_(b)))


def evaluate(f: Formula, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
    """``f`` on (old, new) in ``logic``."""
    match f:
        case Const(value):
            return logic.const(value)
        case Bit(spte, field):
            bit: B = getattr(old if spte == "old" else new, field)
            return bit
        case AdEnabled():
            return ad_enabled
        case Not(arg):
            return logic.not_(evaluate(arg, logic, old, new, ad_enabled))
        case And(args):
            return logic.and_(*(evaluate(a, logic, old, new, ad_enabled) for a in args))
        case Or(args):
            return logic.or_(*(evaluate(a, logic, old, new, ad_enabled) for a in args))
    raise TypeError(f"not a formula: {f!r}")


#: short names of the SPTE fields, as in the domain brief
FIELD_ABBREVIATIONS: dict[str, str] = {
    "present": "P",
    "writable": "W",
    "mmu_writable": "MW",
    "host_writable": "HW",
    "accessed": "A",
    "dirty": "D",
    "access_tracked": "AT",
}


def render(f: Formula, atom: Callable[[Bit | AdEnabled], str] | None = None) -> str:
    """``f`` in model terms, e.g. ``MW(old) && !MW(new)``; ``atom`` spells atoms otherwise.

    Parentheses only where C precedence needs them (``!`` over ``&&`` over ``||``), so
    the same printer serves the model notation and C.
    """

    def model_atom(a: Bit | AdEnabled) -> str:
        return f"{FIELD_ABBREVIATIONS[a.field]}({a.spte})" if isinstance(a, Bit) else "AD"

    spell = atom or model_atom

    def go(f: Formula, parent: str) -> str:
        match f:
            case Const(value):
                return "true" if value else "false"
            case Bit() | AdEnabled():
                return spell(f)
            case Not(arg):
                return "!" + go(arg, "!")
            case And(args):
                text = " && ".join(go(a, "&&") for a in args)
                return f"({text})" if parent == "!" else text
            case Or(args):
                text = " || ".join(go(a, "||") for a in args)
                return f"({text})" if parent in ("!", "&&") else text
        raise TypeError(f"not a formula: {f!r}")

    return go(f, "")


# --- deciding formulas by their truth tables ----------------------------------------------


def atoms(f: Formula) -> set[Bit | AdEnabled]:
    """The atoms ``f`` mentions."""
    match f:
        case Const():
            return set()
        case Bit() | AdEnabled():
            return {f}
        case Not(arg):
            return atoms(arg)
        case And(args) | Or(args):
            return set().union(*(atoms(a) for a in args))
    raise TypeError(f"not a formula: {f!r}")


def valid(f: Formula) -> bool:
    """``f`` is true for every old/new SPTE and A/D setting.

    Decided on the truth table over the atoms ``f`` mentions, all rows at once: each
    atom's column is one 2**k-bit integer, and the connectives are bitwise.
    """
    names = sorted(atoms(f), key=repr)
    rows = 1 << len(names)
    full = (1 << rows) - 1
    columns = {name: _column(i, len(names)) for i, name in enumerate(names)}

    def table(f: Formula) -> int:
        match f:
            case Const(value):
                return full if value else 0
            case Bit() | AdEnabled():
                return columns[f]
            case Not(arg):
                return full & ~table(arg)
            case And(args):
                result = full
                for a in args:
                    result &= table(a)
                return result
            case Or(args):
                result = 0
                for a in args:
                    result |= table(a)
                return result
        raise TypeError(f"not a formula: {f!r}")

    return table(f) == full


def _column(i: int, k: int) -> int:
    """Bit ``r`` is set iff bit ``i`` of row number ``r`` is (rows 0 .. 2**k-1)."""
    width = 1 << i
    column, length = ((1 << width) - 1) << width, 2 * width
    while length < 1 << k:
        column |= column << length
        length *= 2
    return column


def equivalent(a: Formula, b: Formula, assuming: Formula = TRUE) -> bool:
    """``assuming => (a <=> b)`` is valid."""
    return valid(or_(not_(assuming), iff(a, b)))


def measure(f: Formula) -> tuple[int, int]:
    """``f``'s depth and size (number of nodes) as a tree, each shared subformula
    counted as often as it occurs. Computed without recursion and visiting each
    distinct node once, so it is cheap even where the tree is exponentially large
    (``a == b`` uses each side twice): that is what it is for, refusing formulas the
    recursive functions here would take too long or too deep to walk."""
    done: dict[int, tuple[int, int]] = {}
    stack: list[tuple[Formula, bool]] = [(f, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        children: tuple[Formula, ...] = (
            (node.arg,)
            if isinstance(node, Not)
            else node.args
            if isinstance(node, And | Or)
            else ()
        )
        if expanded or not children:
            measured = [done[id(c)] for c in children]
            done[id(node)] = (
                1 + max((d for d, _ in measured), default=0),
                1 + sum(s for _, s in measured),
            )
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in done)
    return done[id(f)]
