"""The SPTE/TLB model of one guest frame (gfn): the single source of truth.

Representation
--------------
A state is ``(gfn, tlb[0..N-1])``:

* ``gfn`` (:class:`Gfn`) holds everything shared: the leaf SPTE (:class:`Spte`), whether
  the gfn is write-tracked, dirty logging, the gfn's dirty bit, the two flushes that
  run after ``mmu_lock`` is dropped (harvest, enabling dirty logging) while pending,
  and ``ad_enabled``, a configuration bit fixed in the initial state.
* ``tlb[v]`` (:class:`TlbEntry`) is vCPU ``v``'s TLB entry for the gfn: none,
  read-only or writable, as the pair ``(cached, writable)`` with ``writable => cached``.

An operation (:class:`Operation`) is a function from ``(gfn, tlb[actor], params)`` to
an :class:`Effect`: whether it is enabled, the new ``gfn``, the actor's new TLB entry,
and whether it flushes every TLB on its own account. :func:`apply` adds the flush
rule: an operation that writes a present SPTE through ``mmu_spte_update`` asks the
rule under check, ``rule(old_spte, new_spte)``, and flushes every TLB iff it says so.
The successor is then

    tlb'[v] = none                  if flush
            = actor_tlb'            if v = actor
            = tlb[v]                otherwise

No operation reads another vCPU's TLB entry; vCPUs interact only through ``gfn``.

Atomicity
---------
A section under ``mmu_lock`` (SPTE write, then its flush) is one step. Lockless
actors (TLB fills, guest writes, fast page faults) that would interleave inside the
section are equivalent to ones ordered before or after it: a fill or write before
the flush is either dropped by that flush or happened under the old SPTE, and the
properties only speak of states in which the lock is free. Flushes that KVM issues
after dropping the lock (dirty-log harvest, enabling dirty logging) are separate
steps, with a pending flag in between. Memslot updates and dirty-log harvests
serialise on ``slots_lock``, hence at most one of those flushes is pending.

Everything here is written against ``Logic[B]`` (``checker.model.logic``): interpreted
with Python bools it is the step function, with z3 terms the transition relation.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from checker.model.logic import Logic

B = TypeVar("B")


@dataclass(frozen=True, order=True)
class Spte(Generic[B]):
    """A leaf SPTE. Non-present SPTEs are all-zero (a zap clears every bit)."""

    present: B
    writable: B
    mmu_writable: B
    host_writable: B
    accessed: B
    dirty: B
    access_tracked: B


@dataclass(frozen=True, order=True)
class Gfn(Generic[B]):
    """Everything about the gfn that is not per-vCPU."""

    spte: Spte[B]
    ad_enabled: B
    write_tracked: B
    dirty_logging: B
    dirty_bit: B
    harvest_flush_pending: B
    enable_flush_pending: B


@dataclass(frozen=True, order=True)
class TlbEntry(Generic[B]):
    """One vCPU's TLB entry for the gfn: none (not cached), read-only or writable."""

    cached: B
    writable: B


SPTE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Spte))

Layout = Literal["x86", "ept"]

#: bit position of each SPTE field that has one, per layout (domain.md section 2).
#: Access tracking has no bit of its own in these layouts.
BIT_POSITIONS: dict[Layout, dict[str, int]] = {
    "x86": {
        "writable": 1,
        "accessed": 5,
        "dirty": 6,
        "host_writable": 9,
        "mmu_writable": 10,
        "present": 11,
    },
    "ept": {
        "writable": 1,
        "accessed": 8,
        "dirty": 9,
        "present": 11,
        "host_writable": 57,
        "mmu_writable": 58,
    },
}


def spte_value(spte: Spte[bool], layout: Layout = "x86") -> int:
    """The SPTE's modelled bits as a 64-bit value in ``layout``."""
    return sum(1 << pos for field, pos in BIT_POSITIONS[layout].items() if getattr(spte, field))


GFN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Gfn) if f.name != "spte")
TLB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TlbEntry))


class Tlb(enum.IntEnum):
    """Concrete TLB entry, as shown to users."""

    NONE = 0
    READ_ONLY = 1
    WRITABLE = 2

    @property
    def label(self) -> str:
        return ("none", "ro", "rw")[self]

    def entry(self) -> TlbEntry[bool]:
        return TlbEntry(cached=self is not Tlb.NONE, writable=self is Tlb.WRITABLE)

    @staticmethod
    def of(entry: TlbEntry[bool]) -> Tlb:
        if entry.writable and not entry.cached:
            raise ValueError("TLB entry writable but not cached")
        if not entry.cached:
            return Tlb.NONE
        return Tlb.WRITABLE if entry.writable else Tlb.READ_ONLY


# --- the rule under check ---------------------------------------------------------


class FlushRule(Protocol):
    """``mmu_spte_update``'s flush condition: flush iff ``decide(old, new)``."""

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B: ...


# --- the paths around the rule ------------------------------------------------------


class HarvestFlush(enum.Enum):
    """When a dirty-log harvest flushes the TLBs."""

    #: after dropping mmu_lock, iff something was reaped (KVM today)
    REAPED = "reaped"
    #: after dropping mmu_lock, iff the write-protect changed an SPTE
    CHANGED = "changed"
    #: after dropping mmu_lock, even if nothing was reaped
    ALWAYS = "always"
    NEVER = "never"
    #: before dropping mmu_lock, iff something was reaped (v3.x)
    LOCKED = "locked"


class EnableFlush(enum.Enum):
    """When enabling dirty logging flushes the TLBs (after dropping mmu_lock)."""

    #: unconditionally (KVM since b64d740ea7dd)
    ALWAYS = "always"
    #: iff some SPTE was writable before the write-protect
    WRITABLE = "writable"
    #: iff some SPTE was MMU-writable
    MMU_WRITABLE = "mmu_writable"
    NEVER = "never"
    #: before dropping mmu_lock, unconditionally (v3.x)
    LOCKED = "locked"


class AgingWithoutAd(enum.Enum):
    """What aging does to an SPTE when the MMU has no hardware A/D bits."""

    #: access-track it: clear W (and R), keep MW, no flush (v4.x and later)
    ACCESS_TRACK = "access_track"
    #: zap it, with the zap's flush (v3.x)
    ZAP = "zap"


@dataclass(frozen=True)
class Paths:
    """The KVM paths around the rule that have their own flush behaviour.

    Dirty logging's correctness rests on two flushes the rule does not decide (the
    harvest's and the one after enabling logging); aging and prefetch differ between
    kernel eras. The defaults are the domain brief's model: KVM today, plus the
    prefetch refresh of kernels before v6.13.
    """

    harvest_flush: HarvestFlush = HarvestFlush.REAPED
    enable_flush: EnableFlush = EnableFlush.ALWAYS
    aging_without_ad: AgingWithoutAd = AgingWithoutAd.ACCESS_TRACK
    prefetch_refresh: bool = True


@dataclass(frozen=True)
class System:
    """What is checked: a flush rule and the paths around it."""

    rule: FlushRule
    paths: Paths = dataclasses.field(default_factory=Paths)


# --- operations -------------------------------------------------------------------


class Flush(enum.Enum):
    """How an operation decides to flush the TLBs of every vCPU."""

    NEVER = "never"
    #: writes a present SPTE through ``mmu_spte_update`` and flushes before dropping
    #: ``mmu_lock`` iff the rule says so
    RULE = "rule"
    #: goes through ``mmu_spte_update`` too, but its caller ignores the rule's answer
    #: and flushes later, after dropping the lock (a separate step)
    DEFERRED = "deferred"
    ALWAYS = "always"


@dataclass(frozen=True)
class Effect(Generic[B]):
    """What an operation does, before the flush rule is applied."""

    enabled: B
    gfn: Gfn[B]
    actor_tlb: TlbEntry[B]
    flush: B


Params = Mapping[str, B]
EffectFn = Callable[[Logic[B], Gfn[B], TlbEntry[B], Params[B], "Paths"], Effect[B]]

#: every parameter any operation takes, in canonical (encoding) order
PARAMS: tuple[str, ...] = ("host_writable", "guest_writable")


@dataclass(frozen=True)
class Operation:
    """One row of the domain's operation table."""

    name: str
    title: str
    #: the kernel function that performs the step (for traces)
    function: str
    #: the call path leading to it
    path: str
    by_vcpu: bool
    flush: Flush
    params: tuple[str, ...]
    effect: EffectFn  # type: ignore[type-arg]


def _spte(gfn: Gfn[B], **changes: B) -> Gfn[B]:
    return dataclasses.replace(gfn, spte=dataclasses.replace(gfn.spte, **changes))


def _effect(
    logic: Logic[B],
    enabled: B,
    gfn: Gfn[B],
    actor_tlb: TlbEntry[B],
    flush: bool = False,
) -> Effect[B]:
    return Effect(enabled=enabled, gfn=gfn, actor_tlb=actor_tlb, flush=logic.const(flush))


def _guest_access(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """TLB miss: the walk caches the SPTE's permission. Hardware sets Accessed."""
    s = g.spte
    walkable = L.and_(s.present, L.not_(s.access_tracked))
    enabled = L.and_(L.not_(tlb.cached), walkable)
    filled = TlbEntry(cached=L.const(True), writable=s.writable)
    new = _spte(g, accessed=L.or_(s.accessed, g.ad_enabled))
    return _effect(L, enabled, new, filled)


def _guest_write(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """A store through a cached writable entry: no exit, KVM never sees it.

    The CPU sets Dirty in the SPTE only if that SPTE is still writable.
    """
    s = g.spte
    dirty = L.or_(s.dirty, L.and_(g.ad_enabled, s.present, s.writable))
    return _effect(L, tlb.writable, _spte(g, dirty=dirty), tlb)


def _evict(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    none = TlbEntry(cached=L.const(False), writable=L.const(False))
    return _effect(L, tlb.cached, g, none)


def _page_fault(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Slow path: install or rebuild the SPTE, writable iff host-writable and untracked.

    ``host_writable`` is the host mapping's permission; it cannot change while the
    SPTE stays present (same pfn), so on a present SPTE the parameter must match.
    """
    s = g.spte
    host_writable = p["host_writable"]
    enabled = L.or_(L.not_(s.present), L.iff(host_writable, s.host_writable))
    writable = L.and_(host_writable, L.not_(g.write_tracked))
    new = dataclasses.replace(
        g,
        spte=Spte(
            present=L.const(True),
            writable=writable,
            mmu_writable=writable,
            host_writable=host_writable,
            accessed=g.ad_enabled,
            dirty=L.and_(g.ad_enabled, writable),
            access_tracked=L.const(False),
        ),
        dirty_bit=L.or_(g.dirty_bit, L.and_(g.dirty_logging, writable)),
    )
    return _effect(L, enabled, new, tlb)


def _fast_page_fault(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """Lockless cmpxchg: make an MMU-writable SPTE writable again (and un-age it)."""
    s = g.spte
    enabled = L.and_(s.present, s.mmu_writable, L.or_(L.not_(s.writable), s.access_tracked))
    new = _spte(g, writable=L.const(True), access_tracked=L.const(False))
    new = dataclasses.replace(new, dirty_bit=L.or_(g.dirty_bit, g.dirty_logging))
    return _effect(L, enabled, new, tlb)


def _prefetch(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Refresh of a present SPTE by prefetch: rebuilt read-only and not accessed.

    MMU-writable survives unless the gfn is write-tracked. Without A/D bits the
    "not accessed" SPTE is an access-tracked one.
    """
    s = g.spte
    ad = g.ad_enabled
    new = _spte(
        g,
        writable=L.const(False),
        mmu_writable=L.and_(s.mmu_writable, L.not_(g.write_tracked)),
        accessed=L.const(False),
        dirty=L.const(False),
        access_tracked=L.not_(ad),
    )
    # v6.13 stopped overwriting present SPTEs when prefetching
    return _effect(L, L.and_(L.const(paths.prefetch_refresh), s.present), new, tlb)


def _sync(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Resync with the guest PTE: permissions follow it, write-protected if tracked.

    Accessed, Dirty and access tracking carry over; an access-tracked SPTE stays
    non-writable until a fast page fault restores it.
    """
    s = g.spte
    permitted = L.and_(p["guest_writable"], s.host_writable, L.not_(g.write_tracked))
    writable = L.and_(permitted, L.not_(s.access_tracked))
    new = _spte(g, writable=writable, mmu_writable=permitted)
    new = dataclasses.replace(new, dirty_bit=L.or_(g.dirty_bit, L.and_(g.dirty_logging, writable)))
    return _effect(L, s.present, new, tlb)


def _write_protect(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """Start write-tracking the gfn (it now shadows a guest page table): clear W and MW."""
    new = _spte(g, writable=L.const(False), mmu_writable=L.const(False))
    new = dataclasses.replace(new, write_tracked=L.const(True))
    return _effect(L, L.not_(g.write_tracked), new, tlb)


def _untrack(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The last shadow page for the gfn is gone: faults may map it writable again."""
    return _effect(L, g.write_tracked, dataclasses.replace(g, write_tracked=L.const(False)), tlb)


def _aging(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Clear Accessed; without A/D bits, access-track instead (clears W, keeps MW),
    or, in kernels that did not access-track, zap (and flush)."""
    s = g.spte
    ad = g.ad_enabled
    if paths.aging_without_ad is AgingWithoutAd.ZAP:
        f = L.const(False)
        gone = Spte(f, f, f, f, f, f, f)
        cleared = _spte(g, accessed=f)
        new = dataclasses.replace(
            g,
            spte=Spte(
                *(L.ite(ad, getattr(cleared.spte, x), getattr(gone, x)) for x in SPTE_FIELDS)
            ),
        )
        enabled = L.and_(s.present, L.or_(L.not_(ad), s.accessed))
        return Effect(enabled=enabled, gfn=new, actor_tlb=tlb, flush=L.not_(ad))
    enabled = L.and_(s.present, L.ite(ad, s.accessed, L.not_(s.access_tracked)))
    new = _spte(
        g,
        accessed=L.and_(s.accessed, L.not_(ad)),
        writable=L.and_(s.writable, ad),
        access_tracked=L.or_(s.access_tracked, L.not_(ad)),
    )
    return _effect(L, enabled, new, tlb)


def _zap(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    f = L.const(False)
    gone = dataclasses.replace(g, spte=Spte(f, f, f, f, f, f, f))
    return _effect(L, g.spte.present, gone, tlb, flush=True)


def _enable_dirty_logging(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """Write-protect the slot (W cleared, MW kept); the flush comes after unlock, if
    the paths ask for one."""
    idle = L.not_(L.or_(g.harvest_flush_pending, g.enable_flush_pending))
    enabled = L.and_(L.not_(g.dirty_logging), idle)
    s = g.spte
    later = {
        EnableFlush.ALWAYS: L.const(True),
        EnableFlush.WRITABLE: L.and_(s.present, s.writable),
        EnableFlush.MMU_WRITABLE: L.and_(s.present, s.mmu_writable),
        EnableFlush.NEVER: L.const(False),
        EnableFlush.LOCKED: L.const(False),
    }[paths.enable_flush]
    new = _spte(g, writable=L.const(False))
    new = dataclasses.replace(
        new,
        dirty_logging=L.const(True),
        dirty_bit=L.const(False),
        enable_flush_pending=later,
    )
    now = L.const(paths.enable_flush is EnableFlush.LOCKED)
    return Effect(enabled=enabled, gfn=new, actor_tlb=tlb, flush=now)


def _enable_flush(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """The unconditional flush after enabling dirty logging."""
    new = dataclasses.replace(g, enable_flush_pending=L.const(False))
    return _effect(L, g.enable_flush_pending, new, tlb, flush=True)


def _harvest(L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Reap the dirty bit and write-protect a reaped gfn (W cleared, MW kept), then
    unlock; the flush follows as the paths say (today: after unlock iff reaped)."""
    idle = L.not_(L.or_(g.harvest_flush_pending, g.enable_flush_pending))
    policy = paths.harvest_flush
    reaped = g.dirty_bit
    # a harvest that reaps nothing changes nothing, unless it flushes regardless
    wanted = L.or_(reaped, L.const(policy is HarvestFlush.ALWAYS))
    enabled = L.and_(g.dirty_logging, idle, wanted)
    changed = L.and_(reaped, g.spte.present, g.spte.writable)
    later = {
        HarvestFlush.REAPED: reaped,
        HarvestFlush.CHANGED: changed,
        HarvestFlush.ALWAYS: L.const(True),
        HarvestFlush.NEVER: L.const(False),
        HarvestFlush.LOCKED: L.const(False),
    }[policy]
    now = L.and_(L.const(policy is HarvestFlush.LOCKED), reaped)
    new = _spte(g, writable=L.and_(g.spte.writable, L.not_(reaped)))
    new = dataclasses.replace(new, dirty_bit=L.const(False), harvest_flush_pending=later)
    return Effect(enabled=enabled, gfn=new, actor_tlb=tlb, flush=now)


def _harvest_flush(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    """The harvest's flush, after unlock, because something was reaped."""
    new = dataclasses.replace(g, harvest_flush_pending=L.const(False))
    return _effect(L, g.harvest_flush_pending, new, tlb, flush=True)


def _disable_dirty_logging(
    L: Logic[B], g: Gfn[B], tlb: TlbEntry[B], p: Params[B], paths: Paths
) -> Effect[B]:
    idle = L.not_(L.or_(g.harvest_flush_pending, g.enable_flush_pending))
    new = dataclasses.replace(g, dirty_logging=L.const(False), dirty_bit=L.const(False))
    return _effect(L, L.and_(g.dirty_logging, idle), new, tlb)


#: The operations, in canonical order (counterexamples are minimal in this order).
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="guest_access",
        title="guest access (TLB miss)",
        function="page walk",
        path="hardware page walk on a TLB miss",
        by_vcpu=True,
        flush=Flush.NEVER,
        params=(),
        effect=_guest_access,
    ),
    Operation(
        name="guest_write",
        title="guest write through a cached writable entry",
        function="guest store",
        path="no VM exit: KVM is not involved",
        by_vcpu=True,
        flush=Flush.NEVER,
        params=(),
        effect=_guest_write,
    ),
    Operation(
        name="tlb_evict",
        title="TLB eviction",
        function="TLB eviction",
        path="the CPU drops its entry",
        by_vcpu=True,
        flush=Flush.NEVER,
        params=(),
        effect=_evict,
    ),
    Operation(
        name="page_fault",
        title="page fault, slow path",
        function="mmu_set_spte",
        path=(
            "kvm_mmu_page_fault -> direct_page_fault/kvm_tdp_mmu_map -> mmu_set_spte/"
            "tdp_mmu_map_handle_target_level -> make_spte"
        ),
        by_vcpu=True,
        flush=Flush.RULE,
        params=("host_writable",),
        effect=_page_fault,
    ),
    Operation(
        name="fast_page_fault",
        title="fast page fault (lockless)",
        function="fast_pf_fix_direct_spte",
        path="fast_page_fault -> fast_pf_fix_direct_spte",
        by_vcpu=True,
        flush=Flush.NEVER,
        params=(),
        effect=_fast_page_fault,
    ),
    Operation(
        name="prefetch",
        title="prefetch refresh of a present SPTE",
        function="mmu_set_spte",
        path="direct_pte_prefetch/FNAME(pte_prefetch) -> mmu_set_spte -> make_spte",
        by_vcpu=True,
        flush=Flush.RULE,
        params=(),
        effect=_prefetch,
    ),
    Operation(
        name="sync_spte",
        title="sync of an unsync shadow page",
        function="FNAME(sync_spte)",
        path="kvm_mmu_sync_roots -> FNAME(sync_spte) -> make_spte -> mmu_spte_update",
        by_vcpu=True,
        flush=Flush.RULE,
        params=("guest_writable",),
        effect=_sync,
    ),
    Operation(
        name="write_protect",
        title="write-protect for write-tracking",
        function="spte_write_protect",
        path=(
            "account_shadowed -> kvm_mmu_slot_gfn_write_protect -> rmap_write_protect -> "
            "spte_write_protect -> mmu_spte_update"
        ),
        by_vcpu=True,
        flush=Flush.RULE,
        params=(),
        effect=_write_protect,
    ),
    Operation(
        name="aging",
        title="aging",
        function="mark_spte_for_access_track",
        path="kvm_age_gfn -> mark_spte_for_access_track",
        by_vcpu=False,
        flush=Flush.NEVER,
        params=(),
        effect=_aging,
    ),
    Operation(
        name="zap",
        title="zap",
        function="drop_spte",
        path="kvm_zap_gfn_range -> drop_spte -> kvm_flush_remote_tlbs",
        by_vcpu=False,
        flush=Flush.ALWAYS,
        params=(),
        effect=_zap,
    ),
    Operation(
        name="enable_dirty_logging",
        title="enable dirty logging (write-protect the slot)",
        function="kvm_mmu_slot_apply_flags",
        path="kvm_mmu_slot_apply_flags -> kvm_mmu_slot_remove_write_access -> spte_write_protect",
        by_vcpu=False,
        flush=Flush.DEFERRED,
        params=(),
        effect=_enable_dirty_logging,
    ),
    Operation(
        name="enable_flush",
        title="flush after enabling dirty logging",
        function="kvm_flush_remote_tlbs_memslot",
        path="kvm_mmu_slot_apply_flags -> kvm_flush_remote_tlbs_memslot",
        by_vcpu=False,
        flush=Flush.ALWAYS,
        params=(),
        effect=_enable_flush,
    ),
    Operation(
        name="harvest",
        title="dirty-log harvest (reap and write-protect)",
        function="kvm_arch_mmu_enable_log_dirty_pt_masked",
        path=(
            "kvm_get_dirty_log_protect/kvm_clear_dirty_log_protect -> "
            "kvm_arch_mmu_enable_log_dirty_pt_masked -> spte_write_protect"
        ),
        by_vcpu=False,
        flush=Flush.DEFERRED,
        params=(),
        effect=_harvest,
    ),
    Operation(
        name="harvest_flush",
        title="harvest's flush after unlock",
        function="kvm_flush_remote_tlbs_memslot",
        path=(
            "kvm_get_dirty_log_protect/kvm_clear_dirty_log_protect -> kvm_flush_remote_tlbs_memslot"
        ),
        by_vcpu=False,
        flush=Flush.ALWAYS,
        params=(),
        effect=_harvest_flush,
    ),
    Operation(
        name="disable_dirty_logging",
        title="disable dirty logging",
        function="kvm_mmu_slot_apply_flags",
        path="kvm_mmu_slot_apply_flags",
        by_vcpu=False,
        flush=Flush.NEVER,
        params=(),
        effect=_disable_dirty_logging,
    ),
    Operation(
        name="untrack",
        title="stop write-tracking",
        function="unaccount_shadowed",
        path="kvm_mmu_prepare_zap_page -> unaccount_shadowed",
        by_vcpu=False,
        flush=Flush.NEVER,
        params=(),
        effect=_untrack,
    ),
)

OPERATION_BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


@dataclass(frozen=True)
class Outcome(Generic[B]):
    """An operation's effect with the flush rule applied."""

    enabled: B
    gfn: Gfn[B]
    actor_tlb: TlbEntry[B]
    #: every vCPU's TLB entry is dropped
    flush: B
    #: the step wrote a present SPTE through ``mmu_spte_update``, which asked the rule
    rule_consulted: B
    #: the rule's answer on (old SPTE, new SPTE); meaningful when consulted
    rule_flush: B


def spte_changed(logic: Logic[B], old: Spte[B], new: Spte[B]) -> B:
    """``old != new`` field by field."""
    return logic.or_(
        *(logic.not_(logic.iff(getattr(old, f), getattr(new, f))) for f in SPTE_FIELDS)
    )


def apply(
    logic: Logic[B],
    system: System,
    op: Operation,
    gfn: Gfn[B],
    actor_tlb: TlbEntry[B],
    params: Params[B],
) -> Outcome[B]:
    """``op``'s outcome, flush rule included.

    The rule is consulted iff ``op`` goes through ``mmu_spte_update`` and the old SPTE
    is present and differs from the new one (KVM skips identical rewrites, and a
    non-present old SPTE never needs a flush). ``flush = effect.flush or (op.flush
    is RULE and consulted and rule(old, new))``.
    """
    effect = op.effect(logic, gfn, actor_tlb, params, system.paths)
    old, new = gfn.spte, effect.gfn.spte
    if op.flush in (Flush.RULE, Flush.DEFERRED):
        consulted = logic.and_(old.present, spte_changed(logic, old, new))
        decision = system.rule.decide(logic, old, new, gfn.ad_enabled)
    else:
        consulted = decision = logic.const(False)
    flush = effect.flush
    if op.flush is Flush.RULE:
        flush = logic.or_(flush, logic.and_(consulted, decision))
    return Outcome(
        enabled=effect.enabled,
        gfn=effect.gfn,
        actor_tlb=effect.actor_tlb,
        flush=flush,
        rule_consulted=consulted,
        rule_flush=decision,
    )


def initial_gfn(logic: Logic[B], ad_enabled: B) -> Gfn[B]:
    """Nothing mapped, cached, tracked or logged. A/D support is the one free choice."""
    f = logic.const(False)
    return Gfn(
        spte=Spte(f, f, f, f, f, f, f),
        ad_enabled=ad_enabled,
        write_tracked=f,
        dirty_logging=f,
        dirty_bit=f,
        harvest_flush_pending=f,
        enable_flush_pending=f,
    )


# --- properties -------------------------------------------------------------------


class Kind(enum.Enum):
    #: a predicate on every reachable state
    STATE = "state"
    #: a predicate on every step (state, operation, outcome)
    STEP = "step"


StateBad = Callable[[Logic[B], Gfn[B], Sequence[TlbEntry[B]]], B]
StepBad = Callable[[Logic[B], Operation, Gfn[B], Outcome[B]], B]


@dataclass(frozen=True)
class Property:
    """A property, given by its violation (``bad``): it holds iff no reachable state
    (``Kind.STATE``) or step (``Kind.STEP``) is bad."""

    name: str
    title: str
    statement: str
    kind: Kind
    safety: bool
    bad_state: StateBad | None = None  # type: ignore[type-arg]
    bad_step: StepBad | None = None  # type: ignore[type-arg]


def _stale_writable(L: Logic[B], g: Gfn[B], tlbs: Sequence[TlbEntry[B]]) -> B:
    """Some vCPU caches a writable entry although the SPTE is not present and MW."""
    covered = L.and_(g.spte.present, g.spte.mmu_writable)
    return L.and_(L.or_(*(t.writable for t in tlbs)), L.not_(covered))


def _tracked_write(L: Logic[B], op: Operation, g: Gfn[B], out: Outcome[B]) -> B:
    """A guest write that does not fault while the gfn is write-tracked."""
    return L.and_(L.const(op.name == "guest_write"), g.write_tracked)


def _lost_write(L: Logic[B], op: Operation, g: Gfn[B], out: Outcome[B]) -> B:
    """A guest write that does not fault while logging is on, with nothing to record
    it: the dirty bit is clear and no harvest that reaped it is waiting for its flush.

    Logging is on once enabling it has flushed: until the enable ioctl returns,
    userspace has not started tracking and must treat every page as dirty anyway.
    """
    logging_on = L.and_(g.dirty_logging, L.not_(g.enable_flush_pending))
    unrecorded = L.not_(L.or_(g.dirty_bit, g.harvest_flush_pending))
    return L.and_(L.const(op.name == "guest_write"), logging_on, unrecorded)


def _bad_encoding(L: Logic[B], g: Gfn[B], tlbs: Sequence[TlbEntry[B]]) -> B:
    s = g.spte
    inverted = L.or_(
        L.and_(s.writable, L.not_(s.mmu_writable)), L.and_(s.mmu_writable, L.not_(s.host_writable))
    )
    return L.and_(s.present, inverted)


def _unneeded_flush(L: Logic[B], op: Operation, g: Gfn[B], out: Outcome[B]) -> B:
    """The rule flushes on an update that does not clear MMU-writable."""
    if op.flush is not Flush.RULE:
        return L.const(False)
    clears_mw = L.and_(g.spte.mmu_writable, L.not_(out.gfn.spte.mmu_writable))
    return L.and_(out.rule_consulted, out.rule_flush, L.not_(clears_mw))


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
        "happens only if the gfn's dirty bit is set or a harvest that reaped it has not "
        "flushed yet",
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
)

PROPERTY_BY_NAME: dict[str, Property] = {p.name: p for p in PROPERTIES}
