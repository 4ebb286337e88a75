"""The shadow MMU's tracking of guest page tables (``arch/x86/kvm/mmu/mmu.c``,
``paging_tmpl.h``): resync of unsync pages, and write-protection of a gfn that
shadows a guest page table. Both run under ``mmu_lock`` held for write."""

from __future__ import annotations

from typing import TypeVar

from checker.model.logic import Logic
from checker.model.operation import (
    ActorKind,
    Effect,
    Flush,
    LockMode,
    Operation,
    Params,
    Part,
    Reach,
    Window,
)
from checker.model.paths import Paths

B = TypeVar("B")


def _sync(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Resync with the guest PTE: permissions follow it, write-protected if tracked.

    Accessed, Dirty and access tracking carry over; an access-tracked SPTE stays
    non-writable until a fast page fault restores it.

    enabled = P;  MW' = guest_writable && HW && !tracked;  W' = MW' && !AT;
    dirty_bit' |= logging && W'
    """
    s = w.spte
    permitted = L.and_(p["guest_writable"], s.host_writable, L.not_(w.frame.write_tracked))
    writable = L.and_(permitted, L.not_(s.access_tracked))
    after = w.with_spte(writable=writable, mmu_writable=permitted)
    after = after.with_frame(
        dirty_bit=L.or_(w.frame.dirty_bit, L.and_(w.slot.dirty_logging, writable))
    )
    return Effect(s.present, after, L.const(False))


def _write_protect(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Start write-tracking the gfn (it now shadows a guest page table).

    enabled = !tracked;  W' = MW' = 0;  tracked' = 1
    """
    after = w.with_spte(writable=L.const(False), mmu_writable=L.const(False))
    after = after.with_frame(write_tracked=L.const(True))
    return Effect(L.not_(w.frame.write_tracked), after, L.const(False))


def _untrack(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The last shadow page for the gfn is gone: faults may map it writable again.

    enabled = tracked;  tracked' = 0
    """
    after = w.with_frame(write_tracked=L.const(False))
    return Effect(w.frame.write_tracked, after, L.const(False))


SYNC_SPTE = Operation(
    name="sync_spte",
    title="sync of an unsync shadow page",
    function="FNAME(sync_spte)",
    path="kvm_mmu_sync_roots -> FNAME(sync_spte) -> make_spte -> mmu_spte_update",
    source=(
        "FNAME(sync_spte)() (arch/x86/kvm/mmu/paging_tmpl.h), as the domain brief "
        "describes it, not yet per era"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_sync,
    params=("guest_writable",),
)

WRITE_PROTECT = Operation(
    name="write_protect",
    title="write-protect for write-tracking",
    function="spte_write_protect",
    path=(
        "account_shadowed -> kvm_mmu_slot_gfn_write_protect -> rmap_write_protect -> "
        "spte_write_protect -> mmu_spte_update"
    ),
    source=(
        "the shadow MMU's account_shadowed() -> spte_write_protect() "
        "(arch/x86/kvm/mmu/mmu.c); the TDP MMU's write-protect is not modelled"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_write_protect,
)

UNTRACK = Operation(
    name="untrack",
    title="stop write-tracking",
    function="unaccount_shadowed",
    path="kvm_mmu_prepare_zap_page -> unaccount_shadowed",
    source="unaccount_shadowed() (arch/x86/kvm/mmu/mmu.c)",
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.FRAME}),
    effect=_untrack,
)
