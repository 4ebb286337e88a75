"""A vCPU's page faults (``arch/x86/kvm/mmu/mmu.c``, ``spte.c``) and the prefetch
around them, in the shadow MMU: the slow path runs under ``mmu_lock`` held for
write, the fast path is lockless."""

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
from checker.model.vocabulary import Spte

B = TypeVar("B")


def _page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Slow path: install or rebuild the SPTE, writable iff host-writable and untracked.

    ``host_writable`` is the host mapping's permission; it cannot change while the
    SPTE stays present (same pfn), so on a present SPTE the parameter must match.

    enabled = !P || host_writable == HW;  W' = MW' = host_writable && !tracked;
    A' = ad_enabled;  D' = ad_enabled && W';  dirty_bit' |= logging && W'
    """
    s = w.spte
    host_writable = p["host_writable"]
    enabled = L.or_(L.not_(s.present), L.iff(host_writable, s.host_writable))
    writable = L.and_(host_writable, L.not_(w.frame.write_tracked))
    ad = w.slot.ad_enabled
    after = w.with_sptes(
        {
            w.spte_index: Spte(
                present=L.const(True),
                writable=writable,
                mmu_writable=writable,
                host_writable=host_writable,
                accessed=ad,
                dirty=L.and_(ad, writable),
                access_tracked=L.const(False),
            )
        }
    )
    after = after.with_frame(
        dirty_bit=L.or_(w.frame.dirty_bit, L.and_(w.slot.dirty_logging, writable))
    )
    return Effect(enabled, after, L.const(False))


def _fast_page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Lockless ``cmpxchg``: make an MMU-writable SPTE writable again (and un-age it).

    enabled = P && MW && (!W || AT);  W' = 1;  AT' = 0;  dirty_bit' |= logging
    """
    s = w.spte
    enabled = L.and_(s.present, s.mmu_writable, L.or_(L.not_(s.writable), s.access_tracked))
    after = w.with_spte(writable=L.const(True), access_tracked=L.const(False))
    after = after.with_frame(dirty_bit=L.or_(w.frame.dirty_bit, w.slot.dirty_logging))
    return Effect(enabled, after, L.const(False))


def _prefetch(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Refresh of a present SPTE by prefetch: rebuilt read-only and not accessed.

    MMU-writable survives unless the gfn is write-tracked. Without A/D bits the
    "not accessed" SPTE is an access-tracked one. v6.13 stopped overwriting
    present SPTEs when prefetching (``paths.prefetch_refresh`` off).

    enabled = prefetch_refresh && P;  W' = A' = D' = 0;  MW' = MW && !tracked;
    AT' = !ad_enabled
    """
    s = w.spte
    after = w.with_spte(
        writable=L.const(False),
        mmu_writable=L.and_(s.mmu_writable, L.not_(w.frame.write_tracked)),
        accessed=L.const(False),
        dirty=L.const(False),
        access_tracked=L.not_(w.slot.ad_enabled),
    )
    return Effect(L.and_(L.const(paths.prefetch_refresh), s.present), after, L.const(False))


PAGE_FAULT = Operation(
    name="page_fault",
    title="page fault, slow path",
    function="mmu_set_spte",
    path=(
        "kvm_mmu_page_fault -> direct_page_fault/kvm_tdp_mmu_map -> mmu_set_spte/"
        "tdp_mmu_map_handle_target_level -> make_spte"
    ),
    source=(
        "the shadow MMU's mmu_set_spte()/make_spte() (arch/x86/kvm/mmu/mmu.c, spte.c), "
        "simplified: a write-tracked gfn is never mapped writable (a 4K page-table gfn "
        "can go unsync and writable) and the TDP MMU's fault is not told apart"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_page_fault,
    params=("host_writable",),
)

FAST_PAGE_FAULT = Operation(
    name="fast_page_fault",
    title="fast page fault (lockless)",
    function="fast_pf_fix_direct_spte",
    path="fast_page_fault -> fast_pf_fix_direct_spte",
    source=(
        "fast_page_fault()/fast_pf_fix_direct_spte() (arch/x86/kvm/mmu/mmu.c), "
        "simplified: W is restored on any fault, where KVM restores it on write faults"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_fast_page_fault,
)

PREFETCH = Operation(
    name="prefetch",
    title="prefetch refresh of a present SPTE",
    function="mmu_set_spte",
    path="direct_pte_prefetch/FNAME(pte_prefetch) -> mmu_set_spte -> make_spte",
    source=(
        "the domain brief's refresh of a present SPTE, which matches no release: "
        "KVM kept W with A/D bits on, and the refresh came from faults with "
        "prefetch set; off (paths.prefetch_refresh) for v6.13 and later"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE}),
    effect=_prefetch,
)
