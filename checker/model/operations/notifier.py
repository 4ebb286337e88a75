"""The host's MMU notifier on a gfn (``arch/x86/kvm/mmu/mmu.c``): aging
(``kvm_age_gfn``) and zapping (``kvm_unmap_gfn_range``), under ``mmu_lock`` held
for write in the shadow MMU."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from checker.model.logic import Logic
from checker.model.operation import (
    ActorKind,
    Effect,
    Flush,
    Hold,
    LockMode,
    Operation,
    Params,
    Part,
    Reach,
    Window,
)
from checker.model.paths import AgingWithoutAd, Mmu, Paths
from checker.model.vocabulary import SPTE_FIELDS, Local, Spte, select

B = TypeVar("B")


def _gone(L: Logic[B]) -> Spte[B]:
    f = L.const(False)
    return Spte(*(f for _ in SPTE_FIELDS))


def _aging(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Clear Accessed (a bit operation, not ``mmu_spte_update``); without A/D bits,
    access-track instead through ``mmu_spte_update`` (clears W, keeps MW), or, in
    kernels before lockless access tracking (``paths.aging_without_ad`` ZAP), zap
    it and flush.

    access-track: enabled = P && (ad ? A : !AT);  A' = A && !ad;  W' = W && ad;
    AT' = AT || !ad;  asks the rule iff !ad.
    zap: enabled = P && (!ad || A);  ad ? A' = 0 : SPTE' = 0;  flush = !ad
    """
    s = w.spte
    ad = w.slot.ad_enabled
    if paths.aging_without_ad is AgingWithoutAd.ZAP:
        cleared = w.with_spte(accessed=L.const(False)).spte
        after = w.with_sptes({w.spte_index: select(L, ad, cleared, _gone(L))})
        enabled = L.and_(s.present, L.or_(L.not_(ad), s.accessed))
        return Effect(enabled, after, L.not_(ad))
    enabled = L.and_(s.present, L.ite(ad, s.accessed, L.not_(s.access_tracked)))
    after = w.with_spte(
        accessed=L.and_(s.accessed, L.not_(ad)),
        writable=L.and_(s.writable, ad),
        access_tracked=L.or_(s.access_tracked, L.not_(ad)),
    )
    return Effect(enabled, after, L.const(False), asks=L.not_(ad))


#: what the TDP MMU's aging read of the SPTE, before its plain store (v5.10..v5.17):
#: the bits a lockless actor may set in between (the CPU sets Dirty, the fast page
#: fault sets Writable), which the store writes back as read
AGING_READ_DIRTY = Local("aging_read_dirty", "the Dirty bit the aging read, until its store")
AGING_READ_WRITABLE = Local(
    "aging_read_writable", "the Writable bit the aging read, until its store"
)


def _aging_read(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The TDP MMU's aging before ba3a6120a4e7, first step: take mmu_lock for write
    and read the SPTE (``iter->old_spte``); the aged value is computed from it and
    stored in the next step.

    enabled = as aging's;  remembers D and W
    """
    aged = _aging(L, w, p, paths)
    s = w.spte
    after = w.with_local(**{AGING_READ_DIRTY.name: s.dirty, AGING_READ_WRITABLE.name: s.writable})
    return Effect(aged.enabled, after, L.const(False))


def _aging_store(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The TDP MMU's aging before ba3a6120a4e7, second step: store the aged SPTE with
    a plain write (``WRITE_ONCE``), computed from what the first step read, and drop
    mmu_lock. A Dirty bit the CPU set, or a Writable bit the fast page fault set, in
    between is lost. Only lockless actors run in between (the host holds mmu_lock
    for write), and they change only A, D, W and AT of a present SPTE; the aged
    value sets A, W and AT itself, so D and W are what the read decides.

    enabled = holds mmu_lock for write (the lock protocol);
    ad:  A' = 0;  D' = read D;  W' = read W
    !ad: as aging (W' = 0, AT' = 1; D is never set without A/D bits)
    """
    s = w.spte
    ad = w.slot.ad_enabled
    aged = w.with_spte(
        accessed=L.and_(s.accessed, L.not_(ad)),
        writable=L.and_(w.local(AGING_READ_WRITABLE.name), ad),
        dirty=L.ite(ad, w.local(AGING_READ_DIRTY.name), s.dirty),
        access_tracked=L.or_(s.access_tracked, L.not_(ad)),
    )
    f = L.const(False)
    after = aged.with_local(**{AGING_READ_DIRTY.name: f, AGING_READ_WRITABLE.name: f})
    return Effect(L.const(True), after, f)


def _zap(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Drop the SPTE and flush.  enabled = P;  SPTE' = 0;  flush"""
    after = w.with_sptes({w.spte_index: _gone(L)})
    return Effect(w.spte.present, after, L.const(True))


def _aging_in_era(op: Operation, paths: Paths) -> Operation:
    """The shadow MMU ignores ``mmu_spte_update``'s answer when aging (v4.10..v6.12)
    and asserts it since v6.13 (``WARN_ON_ONCE``); before lockless access tracking
    it zapped, with the zap's flush. The TDP MMU never asks the rule."""
    if paths.aging_without_ad is AgingWithoutAd.ZAP:
        return dataclasses.replace(op, flush=Flush.NEVER, source=op.source + "; zaps before v4.10")
    if paths.mmu is Mmu.TDP and not paths.tdp_atomic_writes:
        return dataclasses.replace(
            op,
            flush=Flush.NEVER,
            hold=Hold.ACQUIRE,
            effect=_aging_read,
            writes=frozenset({Part.LOCAL}),
            locals=(AGING_READ_DIRTY, AGING_READ_WRITABLE),
            function="age_gfn_range",
            path="kvm_age_gfn -> kvm_tdp_mmu_age_gfn_range -> age_gfn_range (the read)",
            source=(
                "age_gfn_range() (arch/x86/kvm/mmu/tdp_mmu.c, read in v5.15.85) before "
                "ba3a6120a4e7 (v5.18): new_spte computed from iter->old_spte, stored "
                "by tdp_mmu_set_spte_no_acc_track() with WRITE_ONCE under mmu_lock "
                "held for write"
            ),
        )
    if paths.mmu is Mmu.TDP:
        return dataclasses.replace(
            op,
            flush=Flush.NEVER,
            function="kvm_tdp_mmu_age_spte",
            path="kvm_age_gfn -> kvm_tdp_mmu_age_gfn_range -> age_gfn_range",
            source=(
                "age_gfn_range()/kvm_tdp_mmu_age_spte() (arch/x86/kvm/mmu/tdp_mmu.c): "
                "clears A, or access-tracks without A/D bits; never flushes (the "
                "clear_young notifier; lockless since v6.18)"
            ),
        )
    if paths.aging_asserted:
        return dataclasses.replace(
            op,
            flush=Flush.ASSERTED,
            source=op.source + "; since v6.13 under WARN_ON_ONCE(mmu_spte_update(...))",
        )
    return op


AGING = Operation(
    name="aging",
    title="aging",
    function="mark_spte_for_access_track",
    path="kvm_age_gfn -> kvm_age_rmap -> mark_spte_for_access_track -> mmu_spte_update",
    source=(
        "kvm_age_rmap() (arch/x86/kvm/mmu/mmu.c): clears A with A/D bits; without, "
        "mark_spte_for_access_track() (spte.c) through mmu_spte_update, its answer "
        "ignored (v4.10..v6.12), never a flush (the clear_young notifier)"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.DEFERRED,
    writes=frozenset({Part.SPTE}),
    effect=_aging,
    configure=_aging_in_era,
)


def _never(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Not a step of the era: never enabled."""
    f = L.const(False)
    return Effect(f, w, f)


def _aging_store_in_era(op: Operation, paths: Paths) -> Operation | None:
    """The store exists only where the TDP MMU's aging stores with a plain write;
    there it holds the lock aging took and reads the locals aging wrote. (As
    declared, for the model of every era, ``MODEL``, it is never enabled and
    declares no local: that model's vocabulary is the one every era shares.)"""
    if paths.mmu is Mmu.TDP and not paths.tdp_atomic_writes:
        return dataclasses.replace(
            op,
            effect=_aging_store,
            writes=frozenset({Part.SPTE, Part.LOCAL}),
            hold=Hold.RELEASE,
            locals=(AGING_READ_DIRTY, AGING_READ_WRITABLE),
            # the locals remember the SPTE's bits, not which gfn was read
            one_gfn=True,
        )
    return None


AGING_STORE = Operation(
    name="aging_store",
    title="aging's plain store",
    function="tdp_mmu_set_spte_no_acc_track",
    path="age_gfn_range -> tdp_mmu_set_spte_no_acc_track -> WRITE_ONCE (the store)",
    source=(
        "__tdp_mmu_set_spte() (arch/x86/kvm/mmu/tdp_mmu.c, read in v5.10.89 and "
        "v5.15.85): WRITE_ONCE(*sptep, new_spte) under mmu_lock held for write, until "
        "ba3a6120a4e7 (v5.18) made it an XCHG when the SPTE has volatile bits"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset(),
    effect=_never,
    mmus=frozenset({Mmu.TDP}),
    configure=_aging_store_in_era,
)

ZAP = Operation(
    name="zap",
    title="zap",
    function="drop_spte",
    path=(
        "kvm_unmap_gfn_range/kvm_zap_gfn_range -> "
        "drop_spte/tdp_mmu_zap_leafs -> kvm_flush_remote_tlbs"
    ),
    source=(
        "drop_spte() (arch/x86/kvm/mmu/mmu.c) and tdp_mmu_zap_leafs() (tdp_mmu.c): "
        "every era flushes before the SPTE can be used again"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.ALWAYS,
    writes=frozenset({Part.SPTE}),
    effect=_zap,
)
