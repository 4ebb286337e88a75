"""The hardware on the guest's behalf: no VM exit, KVM never sees these steps."""

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
    Trait,
    Window,
)
from checker.model.paths import Paths
from checker.model.vocabulary import TlbEntry

B = TypeVar("B")


def _guest_access(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """TLB miss: the walk caches the SPTE's permission, and with A/D bits whether it
    is dirty. Hardware sets Accessed.

    enabled = !tlb.cached && P && !AT;  tlb' = (cached, W, ad && W && D);
    A' = A || ad_enabled
    """
    s = w.spte
    ad = w.slot.ad_enabled
    walkable = L.and_(s.present, L.not_(s.access_tracked))
    enabled = L.and_(L.not_(w.tlb.cached), walkable)
    filled = TlbEntry(
        cached=L.const(True), writable=s.writable, dirty=L.and_(ad, s.writable, s.dirty)
    )
    after = w.with_spte(accessed=L.or_(s.accessed, ad)).with_tlb(filled)
    return Effect(enabled, after, L.const(False))


def _guest_write(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """A store through a cached writable entry.

    With A/D bits, an entry whose dirty state is not cached makes the CPU set Dirty
    in the SPTE: a locked update that re-reads it, and faults instead if the SPTE is
    no longer present and writable (the fault is not a silent store: the vCPU's
    page fault is its own step). With PML, setting Dirty logs the gfn. The entry
    then caches the dirty state, and later stores use the TLB alone. Without A/D
    bits, the store uses the TLB alone.

    enabled = tlb.writable && (!ad || tlb.dirty || (P && W));
    sets    = ad && !tlb.dirty:  D' = 1;  tlb.dirty' = 1;
                                 dirty_bit' = dirty_bit || (pml && logging)
    """
    s = w.spte
    slot = w.slot
    ad = slot.ad_enabled
    sets = L.and_(ad, L.not_(w.tlb.dirty))
    enabled = L.and_(w.tlb.writable, L.or_(L.not_(sets), L.and_(s.present, s.writable)))
    logs = L.and_(sets, slot.pml, slot.dirty_logging)
    after = w.with_spte(dirty=L.or_(s.dirty, sets))
    after = after.with_frame(dirty_bit=L.or_(w.frame.dirty_bit, logs))
    after = after.with_tlb(dataclasses.replace(w.tlb, dirty=L.or_(w.tlb.dirty, sets)))
    return Effect(enabled, after, L.const(False))


def _evict(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The CPU drops its entry.  enabled = tlb.cached;  tlb' = none"""
    f = L.const(False)
    none = TlbEntry(cached=f, writable=f, dirty=f)
    return Effect(w.tlb.cached, w.with_tlb(none), L.const(False))


GUEST_ACCESS = Operation(
    name="guest_access",
    title="guest access (TLB miss)",
    function="page walk",
    path="hardware page walk on a TLB miss",
    source="the x86 architecture (SDM vol. 3, 4.10 and 28.3)",
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE, Part.TLB}),
    effect=_guest_access,
)

GUEST_WRITE = Operation(
    name="guest_write",
    title="guest write through a cached writable entry",
    function="guest store",
    path="no VM exit: KVM is not involved",
    source=(
        "the x86 architecture (SDM vol. 3, 4.8 and 28.3.5: a write through an entry "
        "whose dirty flag is clear sets Dirty in the paging entry; PML logs the GPA "
        "when it does, 28.3.6)"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE, Part.FRAME, Part.TLB}),
    effect=_guest_write,
    traits=frozenset({Trait.GUEST_STORE}),
)

TLB_EVICT = Operation(
    name="tlb_evict",
    title="TLB eviction",
    function="TLB eviction",
    path="the CPU drops its entry",
    source="the x86 architecture (SDM vol. 3, 4.10.4)",
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.TLB}),
    effect=_evict,
)
