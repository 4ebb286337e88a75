"""The host's MMU notifier on a gfn (``arch/x86/kvm/mmu/mmu.c``): aging
(``kvm_age_gfn``) and zapping (``kvm_unmap_gfn_range``), under ``mmu_lock`` held
for write in the shadow MMU."""

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
from checker.model.paths import AgingWithoutAd, Paths
from checker.model.vocabulary import SPTE_FIELDS, Spte, select

B = TypeVar("B")


def _gone(L: Logic[B]) -> Spte[B]:
    f = L.const(False)
    return Spte(*(f for _ in SPTE_FIELDS))


def _aging(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Clear Accessed; without A/D bits, access-track instead (clears W, keeps MW),
    or, in kernels that did not access-track (``paths.aging_without_ad`` ZAP), zap
    it and flush.

    access-track: enabled = P && (ad ? A : !AT);  A' = A && !ad;  W' = W && ad;
    AT' = AT || !ad.   zap: enabled = P && (!ad || A);  ad ? A' = 0 : SPTE' = 0,
    flush = !ad
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
    return Effect(enabled, after, L.const(False))


def _zap(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Drop the SPTE and flush.  enabled = P;  SPTE' = 0;  flush"""
    after = w.with_sptes({w.spte_index: _gone(L)})
    return Effect(w.spte.present, after, L.const(True))


AGING = Operation(
    name="aging",
    title="aging",
    function="mark_spte_for_access_track",
    path="kvm_age_gfn -> mark_spte_for_access_track",
    source=(
        "the shadow MMU's aging: mark_spte_for_access_track() (arch/x86/kvm/mmu/"
        "spte.c) without A/D bits; v3.x zapped instead (paths.aging_without_ad)"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE}),
    effect=_aging,
)

ZAP = Operation(
    name="zap",
    title="zap",
    function="drop_spte",
    path="kvm_zap_gfn_range -> drop_spte -> kvm_flush_remote_tlbs",
    source="the shadow MMU's drop_spte() and its flush (arch/x86/kvm/mmu/mmu.c)",
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.ALWAYS,
    writes=frozenset({Part.SPTE}),
    effect=_zap,
)
