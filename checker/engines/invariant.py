"""Inductive invariants as vCPU-symmetric lemma schemas.

An invariant is a conjunction of lemmas. A lemma is a Boolean formula over the
shared state and the records (TLB entries, locals) of ``slots`` distinct vCPUs, read as universally
quantified over them::

    forall distinct v0..v{slots-1}:  body(shared, vcpu[v0], ..., vcpu[v{slots-1}])

The model treats vCPUs symmetrically, so an invariant found with a few vCPUs is a
candidate for any number: :meth:`Invariant.instantiate` expands it over N vCPUs,
and ``checker.engines.certify`` decides whether it really is inductive there. Nothing here
trusts a lemma; it only represents it.

Lemmas are plain data (no z3 objects), so they print, hash and serialise the same
in every process.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import z3

    from checker.engines.encode import SymState

SLOT_NAMES = "vwxyz"


@dataclass(frozen=True)
class Var:
    """A state variable by its vocabulary name: a shared one (``slot`` None, e.g.
    ``writable``, the SPTE's) or one of a vCPU's (e.g. ``tlb_writable``). Variables
    order by (shared before per-vCPU, slot, name), never by comparing None with a
    slot.
    """

    field: str
    slot: int | None = None

    def _key(self) -> tuple[bool, int, str]:
        return (self.slot is not None, self.slot or 0, self.field)

    def __lt__(self, other: Var) -> bool:
        return self._key() < other._key()

    def render(self) -> str:
        if self.slot is None:
            return self.field
        return f"{self.field}[{SLOT_NAMES[self.slot]}]"


@dataclass(frozen=True, order=True)
class Lit:
    """A state variable, or its negation (``positive`` False)."""

    var: Var
    positive: bool = True


@dataclass(frozen=True, order=True)
class Lemma:
    """``forall distinct slots: OR(literals)`` (a clause), literals sorted."""

    slots: int
    literals: tuple[Lit, ...]

    def render(self) -> str:
        """As an implication: ``premises => conclusions``."""
        premises = [lit.var.render() for lit in self.literals if not lit.positive]
        conclusions = [lit.var.render() for lit in self.literals if lit.positive]
        if not premises:
            text = " || ".join(conclusions) or "false"
        elif not conclusions:
            text = "!(" + " && ".join(premises) + ")"
        else:
            text = " && ".join(premises) + " => " + " || ".join(conclusions)
        return _quantify(self.slots, text)


@dataclass(frozen=True)
class Invariant:
    """A conjunction of lemmas (empty: ``true``)."""

    lemmas: tuple[Lemma, ...]

    @staticmethod
    def of(lemmas: Iterable[Lemma]) -> Invariant:
        """Canonical form: symmetric copies merged, lemmas sorted."""
        return Invariant(tuple(sorted({_canonical(lem) for lem in lemmas})))

    def render(self) -> list[str]:
        """One line per group of lemmas with the same premises."""
        groups: dict[tuple[int, tuple[Lit, ...]], list[Lemma]] = {}
        for lemma in self.lemmas:
            premises = tuple(lit for lit in lemma.literals if not lit.positive)
            positives = [lit for lit in lemma.literals if lit.positive]
            key = (
                (lemma.slots, premises)
                if len(positives) == 1 and premises
                else (-1, lemma.literals)
            )
            groups.setdefault(key, []).append(lemma)
        lines: list[str] = []
        for (slots, premises), members in groups.items():
            if slots < 0 or len(members) == 1:
                lines.extend(m.render() for m in members)
                continue
            conclusions = " && ".join(
                lit.var.render() for m in members for lit in m.literals if lit.positive
            )
            lhs = " && ".join(lit.var.render() for lit in premises)
            lines.append(_quantify(slots, f"{lhs} => {conclusions}"))
        return sorted(lines, key=lambda line: (line.startswith("forall"), line)) or ["true"]

    def to_json(self) -> list[dict[str, object]]:
        return [
            {
                "slots": lemma.slots,
                "clause": [
                    {"var": lit.var.field, "slot": lit.var.slot, "positive": lit.positive}
                    for lit in lemma.literals
                ],
                "text": lemma.render(),
            }
            for lemma in self.lemmas
        ]

    # -- z3 bridge
    def instantiate(self, state: SymState) -> z3.BoolRef:
        """The conjunction of every lemma over every injective map of its slots into
        ``state``'s vCPUs (lemmas needing more vCPUs than exist are vacuous)."""
        import z3

        from checker.engines.smt import conjunction, disjunction, negation

        ctx = state.shared.slot.ad_enabled.ctx
        variable = state.by_name()
        clauses = []
        vcpus = range(len(state.vcpus))
        for lemma in self.lemmas:
            for image in itertools.permutations(vcpus, lemma.slots):
                literals = []
                for lit in lemma.literals:
                    var = lit.var
                    x = variable[var.field, None if var.slot is None else image[var.slot]]
                    literals.append(x if lit.positive else negation(x, ctx))
                clauses.append(disjunction(literals, ctx))
        return conjunction(clauses, ctx) if clauses else z3.BoolVal(True, ctx=ctx)


def _quantify(slots: int, text: str) -> str:
    if slots == 0:
        return text
    names = ", ".join(SLOT_NAMES[i] for i in range(slots))
    return f"forall {names}: {text}"


def _canonical(lemma: Lemma) -> Lemma:
    """The least renaming of the lemma's slots (symmetric copies become equal)."""
    best: Lemma | None = None
    for perm in itertools.permutations(range(lemma.slots)):
        renamed = Lemma(
            lemma.slots,
            tuple(
                sorted(
                    Lit(
                        Var(lit.var.field, None if lit.var.slot is None else perm[lit.var.slot]),
                        lit.positive,
                    )
                    for lit in lemma.literals
                )
            ),
        )
        if best is None or renamed < best:
            best = renamed
    assert best is not None
    return best


class NotAClause(ValueError):
    """A conjunct of a solver's invariant is not a clause over state variables."""


def from_z3(invariant: z3.BoolRef, state: SymState) -> Invariant:
    """Split a z3 invariant over ``state``'s variables into lemmas.

    Each top-level conjunct must be a clause (a disjunction of state literals),
    which is what Spacer produces over Boolean state; its vCPUs become slots.
    """
    import z3

    where = {key: Var(name, slot) for key, (name, slot) in state.named().items()}

    def literal(e: z3.BoolRef) -> Lit:
        positive = True
        while z3.is_not(e):
            e, positive = e.arg(0), not positive
        if not z3.is_const(e) or e.get_id() not in where:
            raise NotAClause(f"not a state literal: {e}")
        return Lit(where[e.get_id()], positive)

    conjuncts = list(_flatten(invariant, z3.is_and))
    lemmas = []
    for c in conjuncts:
        if z3.is_true(c):
            continue
        lits = [literal(d) for d in _flatten(c, z3.is_or)]
        vcpus = sorted({lit.var.slot for lit in lits if lit.var.slot is not None})
        slot_of = {v: i for i, v in enumerate(vcpus)}
        lemmas.append(
            Lemma(
                len(vcpus),
                tuple(
                    sorted(
                        Lit(
                            Var(
                                lit.var.field,
                                None if lit.var.slot is None else slot_of[lit.var.slot],
                            ),
                            lit.positive,
                        )
                        for lit in lits
                    )
                ),
            )
        )
    return Invariant.of(lemmas)


def _flatten(e: z3.BoolRef, is_op: object) -> Iterable[z3.BoolRef]:
    if is_op(e):  # type: ignore[operator]
        for child in e.children():
            yield from _flatten(child, is_op)
    else:
        yield e
