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
    LockMode,
    Operation,
    Params,
    Part,
    Reach,
    Window,
)
from checker.model.paths import AgingWithoutAd, Mmu, Paths
from checker.model.vocabulary import SPTE_FIELDS, Spte, select

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
