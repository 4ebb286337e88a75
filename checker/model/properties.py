"""The properties, each given by its violation (``bad``).

A property holds iff no reachable state (``Kind.STATE``) or step (``Kind.STEP``)
is bad. Properties read operations through their declared attributes (their
traits and flush kind), never through their names, so renaming an operation
cannot make a property hold vacuously.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from checker.model.logic import Logic
from checker.model.operation import Flush, Operation, Outcome, Trait, Window
from checker.model.vocabulary import Actor, Shape, Shared

B = TypeVar("B")


class Kind(enum.Enum):
    #: a predicate on every reachable state
    STATE = "state"
    #: a predicate on every step (the window before it, the operation, its outcome)
    STEP = "step"


StateBad = Callable[[Logic[B], Shared[B], Sequence[Actor[B]], Shape], B]
StepBad = Callable[[Logic[B], Operation, Window[B], Outcome[B]], B]


@dataclass(frozen=True)
class Property:
    """A property, given by its violation (``bad``): it holds iff no reachable state
    (``Kind.STATE``) or step (``Kind.STEP``) is bad.

    A state property's ``bad`` is existential in the vCPUs ("some vCPU ..."): the
    parametric proof relies on it and checks it."""

    name: str
    title: str
    statement: str
    kind: Kind
    safety: bool
    bad_state: StateBad | None = None  # type: ignore[type-arg]
    bad_step: StepBad | None = None  # type: ignore[type-arg]


def _stale_writable(L: Logic[B], shared: Shared[B], vcpus: Sequence[Actor[B]], shape: Shape) -> B:
    """Some vCPU caches a writable entry for a gfn whose SPTE is not present and MW.

    bad = OR over vCPUs v, gfns g:  tlb[v][g].writable && !(P && MW)(spte_of(g))

    With a 2M SPTE, the gfn's SPTE is the one that maps it: the 2M SPTE while it is
    present, else its own; as they are never present together, the gfn is covered
    iff either is present and MW.

    The one section that spans steps in an era's model is the TDP MMU's aging before
    ba3a6120a4e7 (a read step, then a store step, under mmu_lock held for write).
    Its read changes no SPTE, and between the two only lockless actors run, which
    never change P or MW; the store writes P and MW as they were. So a state inside
    that section is bad iff the same state with the lock free is, and the property
    needs no restriction to states where the lock is free. (A model whose sections
    change P or MW before their last step would need one.)
    """
    assert shape.spte_of is not None
    covered = [L.and_(shared.sptes[i].present, shared.sptes[i].mmu_writable) for i in shape.spte_of]
    if shape.huge_spte is not None:
        big = shared.sptes[shape.huge_spte]
        covered = [L.or_(c, L.and_(big.present, big.mmu_writable)) for c in covered]
    uncovered = [L.not_(c) for c in covered]
    return L.or_(
        *(L.and_(v.tlbs[g].writable, uncovered[g]) for v in vcpus for g in range(shape.gfns))
    )


def _tracked_write(L: Logic[B], op: Operation, before: Window[B], out: Outcome[B]) -> B:
    """A guest store that does not fault while its gfn is write-tracked.

    bad = op is a GUEST_STORE && tracked(gfn)
    """
    if Trait.GUEST_STORE not in op.traits:
        return L.const(False)
    return before.frame.write_tracked


def _lost_write(L: Logic[B], op: Operation, before: Window[B], out: Outcome[B]) -> B:
    """A guest store that does not fault while logging is on, with nothing to record
    it: the gfn's dirty bit is clear after the store (a store that sets Dirty under
    PML logs itself) and no harvest that reaped it is waiting for its flush.

    Logging is on once enabling it has flushed: until the enable ioctl returns,
    userspace has not started tracking and must treat every page as dirty anyway.

    bad = op is a GUEST_STORE && logging && !enable_flush_pending
          && !dirty_bit'(gfn) && !harvest_flush_pending
    """
    if Trait.GUEST_STORE not in op.traits:
        return L.const(False)
    slot = before.slot
    logging_on = L.and_(slot.dirty_logging, L.not_(slot.enable_flush_pending))
    unrecorded = L.not_(L.or_(out.window.frame.dirty_bit, slot.harvest_flush_pending))
    return L.and_(logging_on, unrecorded)


def _bad_encoding(L: Logic[B], shared: Shared[B], vcpus: Sequence[Actor[B]], shape: Shape) -> B:
    """Some present SPTE breaks W => MW => HW."""
    return L.or_(
        *(
            L.and_(
                s.present,
                L.or_(
                    L.and_(s.writable, L.not_(s.mmu_writable)),
                    L.and_(s.mmu_writable, L.not_(s.host_writable)),
                ),
            )
            for s in shared.sptes
        )
    )


def _unneeded_flush(L: Logic[B], op: Operation, before: Window[B], out: Outcome[B]) -> B:
    """The rule flushes on an update that does not clear MMU-writable, where the
    caller acts on its answer (flushes on it now, or ORs it into a later flush).

    bad = op.flush in {RULE, LATER} && OR_i consulted[i] && rule(old[i], new[i])
          && !(MW(old[i]) && !MW(new[i]))
    """
    if not op.flush.acts_on_rule:
        return L.const(False)
    return out.rule_unneeded


def _assertion_fires(L: Logic[B], op: Operation, before: Window[B], out: Outcome[B]) -> B:
    """A caller asserts that the rule asks for no flush (``WARN_ON_ONCE``), and it does.

    bad = op.flush is ASSERTED && OR_i consulted[i] && rule(old[i], new[i])
    """
    if op.flush is not Flush.ASSERTED:
        return L.const(False)
    return out.rule_flush


PROPERTIES: tuple[Property, ...] = (
    Property(
        "stale_w",
        "stale-W coverage",
        "whenever mmu_lock is free, a vCPU holding a writable TLB entry implies the SPTE "
        "is present and MMU-writable",
        Kind.STATE,
        True,
        bad_state=_stale_writable,
    ),
    Property(
        "write_tracking",
        "write-tracking",
        "once a write-protect for tracking has released mmu_lock, no vCPU writes the gfn "
        "without a fault",
        Kind.STEP,
        True,
        bad_step=_tracked_write,
    ),
    Property(
        "dirty_log",
        "dirty logging, no lost write",
        "once dirty logging is on (enabled and flushed), a write that does not fault "
        "happens only if the gfn's dirty bit is set after it (a write that sets Dirty "
        "under PML logs itself) or a harvest that reaped it has not flushed yet",
        Kind.STEP,
        True,
        bad_step=_lost_write,
    ),
    Property(
        "encoding",
        "encoding",
        "on a present SPTE, W => MW => HW",
        Kind.STATE,
        True,
        bad_state=_bad_encoding,
    ),
    Property(
        "precision",
        "precision",
        "the rule asks for a flush only on updates that clear MMU-writable (MW(old) && !MW(new))",
        Kind.STEP,
        False,
        bad_step=_unneeded_flush,
    ),
    Property(
        "assertion",
        "assertions",
        "a caller that asserts the rule's answer (WARN_ON_ONCE) never sees it ask for a "
        "flush on a reachable update",
        Kind.STEP,
        # a WARN that fires is a kernel bug report, and a crash under panic_on_warn
        True,
        bad_step=_assertion_fires,
    ),
)

PROPERTY_BY_NAME: dict[str, Property] = {p.name: p for p in PROPERTIES}
