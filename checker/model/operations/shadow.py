"""Tracking of guest page tables (``arch/x86/kvm/mmu/mmu.c``, ``paging_tmpl.h``,
``page_track.c``, ``tdp_mmu.c``): the resync of an unsync shadow page, and the
write-protect of a gfn that starts being write-tracked, in each MMU. All run
under ``mmu_lock`` held for write."""

from __future__ import annotations

import dataclasses
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
from checker.model.operations.faults import built, install
from checker.model.paths import Mmu, Paths, Sync, WriteProtect

B = TypeVar("B")


def _sync(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Resync an SPTE with the guest PTE (``guest_writable``), rebuilt by ``make_spte``
    as a prefetch (before v6.13: not accessed, access-tracked without A/D bits) or,
    since 4e44ab0a7778 (v6.13), as accessed.

    Since e6722d9211b2 (v6.4) an SPTE whose access did not change is skipped. The
    model does not record the access KVM last saw in the guest PTE; it takes the
    access as changed iff the permission KVM would grant differs from MW. The two
    differ only where the rebuilt SPTE would equal the old one.

    permitted = guest_writable && HW && !tracked;
    enabled = P && (sync is EVERY_SPTE || permitted != MW);
    SPTE' = built(permitted, accessed = (sync is CHANGED_ACCESS_ACCESSED))
    """
    s = w.spte
    permitted = L.and_(p["guest_writable"], s.host_writable, L.not_(w.frame.write_tracked))
    enabled = s.present
    if paths.sync is not Sync.EVERY_SPTE:
        enabled = L.and_(enabled, L.not_(L.iff(permitted, s.mmu_writable)))
    accessed = L.const(paths.sync is Sync.CHANGED_ACCESS_ACCESSED)
    new = built(L, w, paths, permitted, accessed)
    return Effect(enabled, install(L, w, new), L.const(False))


def _write_protect(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Start write-tracking the gfn (it now shadows a guest page table): clear W and
    MW on its SPTE.

    shadow MMU (``spte_write_protect(pt_protect)``, asks the rule):
        enabled = !tracked;  W' = MW' = 0;  tracked' = 1
    TDP MMU (``write_protect_gfn``, flushes iff it changed the SPTE):
        touched = P && (W || MW)     (since 7c8a4742c4ab, v5.17)
                = P && W             (v5.10 .. v5.16: !W SPTEs skipped, MW kept)
        enabled = !tracked;  touched ? W' = MW' = 0;  tracked' = 1;  flush = touched
    """
    s = w.spte
    enabled = L.not_(w.frame.write_tracked)
    f = L.const(False)
    if paths.mmu is Mmu.SHADOW:
        after = w.with_spte(writable=f, mmu_writable=f)
        return Effect(enabled, after.with_frame(write_tracked=L.const(True)), f)
    if paths.write_protect is WriteProtect.SKIP_NOT_WRITABLE:
        touched = L.and_(s.present, s.writable)
    else:
        touched = L.and_(s.present, L.or_(s.writable, s.mmu_writable))
    after = w.with_spte(
        writable=L.and_(s.writable, L.not_(touched)),
        mmu_writable=L.and_(s.mmu_writable, L.not_(touched)),
    )
    return Effect(enabled, after.with_frame(write_tracked=L.const(True)), touched)


def _untrack(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The last shadow page for the gfn is gone: faults may map it writable again.

    enabled = tracked;  tracked' = 0
    """
    after = w.with_frame(write_tracked=L.const(False))
    return Effect(w.frame.write_tracked, after, L.const(False))


def _write_protect_in_era(op: Operation, paths: Paths) -> Operation:
    if paths.mmu is Mmu.SHADOW:
        return op
    fixed = paths.write_protect is WriteProtect.MMU_WRITABLE
    return dataclasses.replace(
        op,
        flush=Flush.ALWAYS,
        function="write_protect_gfn",
        path=(
            "account_shadowed/__kvm_write_track_add_gfn -> kvm_mmu_slot_gfn_write_protect -> "
            "kvm_tdp_mmu_write_protect_gfn -> write_protect_gfn"
        ),
        source=(
            "write_protect_gfn() (arch/x86/kvm/mmu/tdp_mmu.c): clears W and MW, the "
            "caller flushes before unlocking iff it changed an SPTE; "
            + (
                "as fixed by 7c8a4742c4ab (v5.17)"
                if fixed
                else "before 7c8a4742c4ab (v5.10..v5.16) it skipped SPTEs that were not writable"
            )
        ),
    )


SYNC_SPTE = Operation(
    name="sync_spte",
    title="sync of an unsync shadow page",
    function="FNAME(sync_spte)",
    path=(
        "kvm_mmu_sync_roots -> mmu_sync_children -> kvm_sync_page -> "
        "FNAME(sync_spte) -> mmu_spte_update"
    ),
    source=(
        "FNAME(sync_page)/FNAME(sync_spte) (arch/x86/kvm/mmu/paging_tmpl.h): every "
        "SPTE rebuilt as a prefetch before e6722d9211b2 (v6.4); only those whose "
        "access changed since; Accessed and never access-tracked since 4e44ab0a7778 "
        "(v6.13). Callers flush before unlocking iff some update asked"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_sync,
    params=("guest_writable",),
    mmus=frozenset({Mmu.SHADOW}),
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
        "account_shadowed()/kvm_mmu_slot_gfn_write_protect() -> spte_write_protect() "
        "with pt_protect (arch/x86/kvm/mmu/mmu.c): the answers ORed, and the caller "
        "flushes before unlocking iff one asked"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_write_protect,
    configure=_write_protect_in_era,
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
