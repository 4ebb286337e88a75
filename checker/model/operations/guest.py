"""The hardware on the guest's behalf: no VM exit, KVM never sees these steps."""

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
    Trait,
    Window,
)
from checker.model.paths import Paths
from checker.model.vocabulary import TlbEntry

B = TypeVar("B")


def _guest_access(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """TLB miss: the walk caches the SPTE's permission. Hardware sets Accessed.

    enabled = !tlb.cached && P && !AT;  tlb' = (cached, W);  A' = A || ad_enabled
    """
    s = w.spte
    walkable = L.and_(s.present, L.not_(s.access_tracked))
    enabled = L.and_(L.not_(w.tlb.cached), walkable)
    filled = TlbEntry(cached=L.const(True), writable=s.writable)
    after = w.with_spte(accessed=L.or_(s.accessed, w.slot.ad_enabled)).with_tlb(filled)
    return Effect(enabled, after, L.const(False))


def _guest_write(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """A store through a cached writable entry. The CPU sets Dirty in the SPTE only
    if that SPTE is still writable.

    enabled = tlb.writable;  D' = D || (ad_enabled && P && W)
    """
    s = w.spte
    dirty = L.or_(s.dirty, L.and_(w.slot.ad_enabled, s.present, s.writable))
    return Effect(w.tlb.writable, w.with_spte(dirty=dirty), L.const(False))


def _evict(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The CPU drops its entry.  enabled = tlb.cached;  tlb' = none"""
    none = TlbEntry(cached=L.const(False), writable=L.const(False))
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
    source="the x86 architecture (SDM vol. 3, 4.8 and 28.3.5)",
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE}),
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
