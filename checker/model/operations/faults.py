"""A vCPU's page faults (``arch/x86/kvm/mmu/mmu.c``, ``spte.c``, ``tdp_mmu.c``):
the slow path of each MMU, the lockless fast path, and the refresh of a present
SPTE by a fault with ``prefetch`` set.

What every fault builds (``make_spte``): a leaf that is writable and MMU-writable
iff the host mapping is writable and the gfn is not write-tracked, Accessed
unless prefetching, Dirty iff writable (with A/D bits), and the gfn marked dirty if
the slot is logged and the leaf is writable.

The host-writable bit of a present SPTE never drops in place: when the host
mapping loses write permission, the MMU notifier zaps the SPTE first
(``kvm_mmu_notifier_invalidate_range_start``), and a fault that raced with it
retries (``mmu_invalidate_retry``). It can rise in place: a write fault on a page
the host mapped read-only until now (a clean shared file page) gets the same pfn
back, writable.

The TDP MMU's fault reads the SPTE, builds the new one and installs it with
``cmpxchg`` under ``mmu_lock`` held for read; a failed ``cmpxchg`` retries the
fault from the guest. It is one step here, and that is exact: a ``cmpxchg`` that
succeeds saw the value the fault read, so every step in between left the SPTE as
it was, was taken by a reader or by a lockless actor (a writer cannot take the
lock), and can be ordered before the read; one that fails has no effect.
"""

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
from checker.model.paths import AgingWithoutAd, FaultFlush, Mmu, Paths, Prefetch
from checker.model.vocabulary import Spte

B = TypeVar("B")


def built(L: Logic[B], w: Window[B], paths: Paths, permitted: B, accessed: B) -> Spte[B]:
    """``make_spte``'s leaf: writable as ``permitted``; Accessed per ``accessed`` with
    A/D bits; without them, in eras that access-track (v4.10+), a leaf that is not
    accessed is access-tracked (``mark_spte_for_access_track``: W dropped, MW kept).

    W = permitted && !AT;  MW = permitted;  HW = the window's;  A = ad && accessed;
    D = ad && permitted;  AT = access_tracking && !ad && !accessed
    """
    ad = w.slot.ad_enabled
    access_tracking = L.const(paths.aging_without_ad is AgingWithoutAd.ACCESS_TRACK)
    tracked = L.and_(access_tracking, L.not_(ad), L.not_(accessed))
    return Spte(
        present=L.const(True),
        writable=L.and_(permitted, L.not_(tracked)),
        mmu_writable=permitted,
        host_writable=w.spte.host_writable,
        accessed=L.and_(ad, accessed),
        dirty=L.and_(ad, permitted),
        access_tracked=tracked,
    )


def install(L: Logic[B], w: Window[B], new: Spte[B]) -> Window[B]:
    """Write ``new`` and mark the gfn dirty if it is writable in a logged slot."""
    after = w.with_sptes({w.spte_index: new})
    return after.with_frame(
        dirty_bit=L.or_(w.frame.dirty_bit, L.and_(w.slot.dirty_logging, new.writable))
    )


def _host_mapping(L: Logic[B], w: Window[B], p: Params[B]) -> tuple[B, Window[B]]:
    """The host mapping's permission, and the window with it on the SPTE.

    enabled = !P || !HW || host_writable     (HW never drops in place)
    """
    s = w.spte
    host_writable = p["host_writable"]
    enabled = L.or_(L.not_(s.present), L.not_(s.host_writable), host_writable)
    return enabled, w.with_spte(host_writable=host_writable)


def _page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Slow path: install the leaf ``make_spte`` builds, or rebuild a present one.

    enabled = !P || !HW || host_writable;
    SPTE' = built(permitted = host_writable && !tracked, accessed = 1)
    In the TDP MMU since v6.13 a fault on a present leaf that already allows the
    access is spurious (``write_fault ? W : !AT``) and changes nothing.
    """
    enabled, seen = _host_mapping(L, w, p)
    permitted = L.and_(p["host_writable"], L.not_(w.frame.write_tracked))
    new = built(L, seen, paths, permitted, L.const(True))
    if paths.mmu is Mmu.TDP and paths.fault_flush is FaultFlush.ASSERT_RULE:
        s = w.spte
        allowed = L.and_(s.present, L.ite(p["write_fault"], s.writable, L.not_(s.access_tracked)))
        enabled = L.and_(enabled, L.not_(allowed))
    return Effect(enabled, install(L, seen, new), L.const(False))


def _fast_page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Lockless ``cmpxchg`` on a present leaf: a read fault un-ages an access-tracked
    SPTE (restores R/X, not W); a write fault also makes an MMU-writable SPTE
    writable, and marks the gfn dirty in a logged slot.

    read:  enabled = P && AT;                    AT' = 0
    write: enabled = P && MW && (!W || AT);      AT' = 0;  W' = 1;  dirty_bit' |= logging
    """
    s = w.spte
    write = p["write_fault"]
    enabled = L.and_(
        s.present,
        L.ite(
            write,
            L.and_(s.mmu_writable, L.or_(L.not_(s.writable), s.access_tracked)),
            s.access_tracked,
        ),
    )
    after = w.with_spte(writable=L.or_(s.writable, write), access_tracked=L.const(False))
    after = after.with_frame(
        dirty_bit=L.or_(w.frame.dirty_bit, L.and_(write, w.slot.dirty_logging))
    )
    return Effect(enabled, after, L.const(False))


def _prefetch(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """A fault with ``prefetch`` set (async page fault, ``KVM_PRE_FAULT_MEMORY``)
    rebuilds a present leaf, same pfn: writable as permitted, not accessed (without
    A/D bits: access-tracked).

    enabled = P;  SPTE' = built(permitted = HW && !tracked, accessed = 0)
    """
    s = w.spte
    permitted = L.and_(s.host_writable, L.not_(w.frame.write_tracked))
    new = built(L, w, paths, permitted, L.const(False))
    return Effect(s.present, install(L, w, new), L.const(False))


def _tdp_flush(op: Operation, paths: Paths) -> Operation:
    """The TDP MMU's fault flushes nothing on a leaf-to-leaf change before v6.13;
    since 1a175082b190 (v6.13) it asserts that the change needs no flush
    (``WARN_ON_ONCE(leaf_spte_change_needs_tlb_flush(old, new))``) and flushes if
    the assertion fires."""
    if paths.mmu is Mmu.SHADOW:
        return op
    asserted = paths.fault_flush is FaultFlush.ASSERT_RULE
    return dataclasses.replace(
        op,
        flush=Flush.ASSERTED if asserted else Flush.NEVER,
        lock=LockMode.READ,
        function="tdp_mmu_map_handle_target_level",
        path="kvm_tdp_mmu_map -> tdp_mmu_map_handle_target_level -> tdp_mmu_set_spte_atomic",
        source=(
            "tdp_mmu_map_handle_target_level() (arch/x86/kvm/mmu/tdp_mmu.c): cmpxchg "
            "under mmu_lock held for read; no flush on a leaf-to-leaf change in "
            "v5.10..v6.12, the rule under WARN_ON_ONCE and a flush since "
            "1a175082b190 (v6.13)"
        ),
    )


def _prefetch_in_era(op: Operation, paths: Paths) -> Operation | None:
    """Gone in v6.13 (6385d01eec16): a prefetch of a present leaf is spurious."""
    if paths.prefetch is Prefetch.NONE:
        return None
    return _tdp_flush(op, paths)


def _fast_in_era(op: Operation, paths: Paths) -> Operation | None:
    return op if paths.fast_page_fault else None


PAGE_FAULT = Operation(
    name="page_fault",
    title="page fault, slow path",
    function="mmu_set_spte",
    path="kvm_mmu_page_fault -> direct_page_fault -> mmu_set_spte -> make_spte -> mmu_spte_update",
    source=(
        "mmu_set_spte()/make_spte() (arch/x86/kvm/mmu/mmu.c, spte.c; set_spte() before "
        "v5.13): the caller flushes before unlocking iff mmu_spte_update asks. A "
        "write-tracked gfn stands for one that cannot go unsync (a page table above "
        "4K, or one tracked by kvm_page_track); unsync pages are not modelled"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_page_fault,
    params=("host_writable", "write_fault"),
    configure=_tdp_flush,
)

FAST_PAGE_FAULT = Operation(
    name="fast_page_fault",
    title="fast page fault (lockless)",
    function="fast_pf_fix_direct_spte",
    path="fast_page_fault -> fast_pf_fix_direct_spte",
    source=(
        "fast_page_fault()/fast_pf_fix_direct_spte() (arch/x86/kvm/mmu/mmu.c): W set "
        "only on a write fault to an MMU-writable SPTE; a read fault restores an "
        "access-tracked SPTE's R/X (since lockless access tracking, v4.10)"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_fast_page_fault,
    params=("write_fault",),
    configure=_fast_in_era,
)

PREFETCH = Operation(
    name="prefetch",
    title="prefetch refresh of a present SPTE",
    function="mmu_set_spte",
    path=(
        "kvm_arch_async_page_ready/KVM_PRE_FAULT_MEMORY -> "
        "kvm_mmu_do_page_fault(prefetch) -> make_spte"
    ),
    source=(
        "make_spte() with prefetch set (arch/x86/kvm/mmu/spte.c; set_spte(speculative) "
        "before v5.13), reached by faults with prefetch set, not by "
        "direct_pte_prefetch (which fills only non-present SPTEs); a prefetch of a "
        "present leaf is spurious since 6385d01eec16 (v6.13)"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_prefetch,
    configure=_prefetch_in_era,
)
