"""Comparing two flush rules over every reachable update.

An *update* is a step that writes a present SPTE through ``mmu_spte_update``, which
asks the rule. A rule's answer depends only on the old SPTE, the new SPTE and the A/D
setting, so updates are counted as distinct (operation, old SPTE, new SPTE, A/D)
tuples, which does not grow with the number of vCPUs; the *class* of an update is
its (old SPTE, new SPTE, A/D) part.

Each rule's reachable updates come from an explicit exploration under that rule
(``checker.engines.explicit``): flush decisions change which TLB entries survive, so the
two rules need not reach exactly the same updates. For each class where the rules
decide differently, the first update of that class found breadth-first gives a
shortest witness trace (preferring one with a writable TLB entry alive, when the
class clears MMU-writable: that is the entry a missed flush would leave behind).

A flush is *needed* where the update clears MMU-writable (``MW(old) && !MW(new)``):
the rule cannot see the TLBs, and a stale writable entry may exist. A flush where
MMU-writable is not cleared is *unnecessary*. Both are judged only where the
caller acts on the rule's answer; the dirty-log write-protects consult the rule
but flush on their own terms.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from checker.engines import explicit
from checker.engines.semantics import Action, State, Step
from checker.model import SPTE_FIELDS, Flush, Spte, System, Tlb
from checker.model.logic import CONCRETE
from checker.rules.formula import FIELD_ABBREVIATIONS


@dataclass(frozen=True, order=True)
class UpdateClass:
    old: Spte[bool]
    new: Spte[bool]
    ad_enabled: bool

    @property
    def clears_mmu_writable(self) -> bool:
        return self.old.mmu_writable and not self.new.mmu_writable

    def change(self) -> str:
        """What the update does to the SPTE, bit by bit in the SPTE's field order:
        each bit it sets or clears, and MMU-writable even when unchanged (it decides
        whether a flush is needed), e.g. ``W cleared, MW kept`` or ``MW kept, A
        cleared``."""
        words = []
        for name in SPTE_FIELDS:
            before, after = getattr(self.old, name), getattr(self.new, name)
            bit = FIELD_ABBREVIATIONS[name]
            if before and not after:
                words.append(f"{bit} cleared")
            elif after and not before:
                words.append(f"{bit} set")
            elif name == "mmu_writable":
                words.append(f"{bit} kept" if before else f"{bit} stays clear")
        return ", ".join(words)


@dataclass(frozen=True, order=True)
class Update:
    operation: str
    update_class: UpdateClass
    #: the caller acts on the rule's answer: flushes before unlock iff it says so,
    #: or ORs it into a flush after unlock (as the era's model declares the step)
    decided: bool
    #: the caller asserts the answer is "no flush" (``WARN_ON_ONCE``)
    asserted: bool = False


@dataclass(frozen=True)
class Witness:
    """A shortest trace ending with an update of the class, under one rule."""

    rule: str
    initial: State
    actions: tuple[Action, ...]
    #: a writable TLB entry exists just before the update
    stale_writable: bool


@dataclass
class Side:
    """One rule's reachable updates."""

    name: str
    system: System
    updates: set[Update] = field(default_factory=set)
    witnesses: dict[UpdateClass, Witness] = field(default_factory=dict)
    states: int = 0

    def flushes(self, cls: UpdateClass) -> bool:
        return bool(self.system.rule.decide(CONCRETE, cls.old, cls.new, cls.ad_enabled))

    @property
    def decided(self) -> list[Update]:
        return [u for u in self.updates if u.decided]

    @property
    def flushed(self) -> list[Update]:
        return [u for u in self.decided if self.flushes(u.update_class)]

    @property
    def unnecessary(self) -> list[Update]:
        return [u for u in self.flushed if not u.update_class.clears_mmu_writable]

    @property
    def missed(self) -> list[Update]:
        return [
            u
            for u in self.decided
            if u.update_class.clears_mmu_writable and not self.flushes(u.update_class)
        ]


@dataclass(frozen=True)
class Difference:
    update_class: UpdateClass
    a_flushes: bool
    b_flushes: bool
    #: operations reaching this class, under either rule
    operations: tuple[str, ...]
    #: some operation reaching it acts on the rule's answer
    decided: bool
    witness: Witness
    #: some operation reaching it asserts the answer is "no flush" (WARN_ON_ONCE)
    asserted: bool = False

    def judgement(self, flushes: bool) -> str:
        """What a side's decision amounts to on this class."""
        if not self.decided and self.asserted:
            return "flush: the caller's WARN_ON_ONCE FIRES" if flushes else "no flush (asserted)"
        if not self.decided:
            return (
                "flush (ignored by the caller)" if flushes else "no flush (ignored by the caller)"
            )
        needed = self.update_class.clears_mmu_writable
        change = self.update_class.change()
        if flushes:
            return "flush" if needed else f"flush: UNNECESSARY ({change})"
        return f"no flush: MISSES A NEEDED FLUSH ({change})" if needed else "no flush"


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    differences: tuple[Difference, ...]


def reachable_updates(
    name: str, system: System, vcpus: int, max_states: int | None = explicit.DEFAULT_MAX_STATES
) -> Side:
    """Every update reachable under ``system``, with a shortest witness per class;
    :class:`~checker.engines.explicit.StateBudgetExceeded` beyond ``max_states`` states."""
    side = Side(name, system)
    # per class, the first update found of each kind; the best kind becomes the witness
    found: dict[UpdateClass, dict[tuple[bool, bool], tuple[State, Step]]] = {}

    def visit(ex: explicit.Exploration, parent: State, step: Step) -> bool:
        if not step.outcome.rule_consulted:
            return False
        before = step.before.window(step.action)
        cls = UpdateClass(before.spte, step.outcome.window.spte, before.slot.ad_enabled)
        flush = step.operation.flush
        update = Update(step.action.op, cls, flush.acts_on_rule, flush is Flush.ASSERTED)
        side.updates.add(update)
        kind = (update.decided, _writable_entry(step))
        found.setdefault(cls, {}).setdefault(kind, (parent, step))
        return False

    ex, _ = explicit.explore(system, vcpus, visit=visit, max_states=max_states)
    side.states = ex.raw_states
    for cls, kinds in found.items():
        # prefer an update whose caller acts on the rule, then (where MMU-writable is
        # cleared) one with a writable entry alive: what a missed flush leaves behind
        preference = [(True, True), (True, False), (False, True), (False, False)]
        if not cls.clears_mmu_writable:
            preference = [(True, False), (True, True), (False, False), (False, True)]
        parent, step = next(kinds[k] for k in preference if k in kinds)
        initial, actions, where = ex.trace_to(parent)
        last = step.action
        if last.vcpu is not None:
            last = dataclasses.replace(last, vcpu=where[last.vcpu])
        side.witnesses[cls] = Witness(name, initial, (*actions, last), _writable_entry(step))
    return side


def _writable_entry(step: Step) -> bool:
    """Some vCPU caches a writable entry for the gfn the step updates."""
    gfn = step.action.gfn or 0
    return any(t in (Tlb.WRITABLE, Tlb.DIRTY) for t in step.before.tlbs(gfn))


def compare(a: Side, b: Side) -> Comparison:
    """The classes where the two rules decide differently, in a fixed order."""
    by_class: dict[UpdateClass, set[str]] = {}
    acted: set[UpdateClass] = set()
    asserted: set[UpdateClass] = set()
    for u in (*a.updates, *b.updates):
        by_class.setdefault(u.update_class, set()).add(u.operation)
        if u.decided:
            acted.add(u.update_class)
        if u.asserted:
            asserted.add(u.update_class)
    differences = []
    for cls in sorted(by_class):
        a_flushes, b_flushes = a.flushes(cls), b.flushes(cls)
        if a_flushes == b_flushes:
            continue
        ops = tuple(sorted(by_class[cls]))
        witness = a.witnesses.get(cls) or b.witnesses[cls]
        decided = cls in acted
        differences.append(
            Difference(cls, a_flushes, b_flushes, ops, decided, witness, cls in asserted)
        )
    return Comparison(a, b, tuple(differences))


def diff(
    a: tuple[str, System],
    b: tuple[str, System],
    vcpus: int,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
) -> Comparison:
    return compare(
        reachable_updates(*a, vcpus, max_states), reachable_updates(*b, vcpus, max_states)
    )


def replay_witness(system: System, witness: Witness) -> list[Step]:
    """The witness's steps under ``system`` (the rule it was found under)."""
    stepper = explicit.Stepper(system)
    steps = []
    state = witness.initial
    for action in witness.actions:
        s = stepper.step(state, action)
        if s is None:
            raise AssertionError(f"witness action {action.label} not enabled")
        steps.append(s)
        state = s.after
    return steps
