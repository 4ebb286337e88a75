"""Dirty logging (``virt/kvm/kvm_main.c``, ``arch/x86/kvm/x86.c``,
``arch/x86/kvm/mmu/mmu.c``): enabling it write-protects the memslot, a harvest
reaps the dirty bitmap and write-protects what it reaped, and both flush after
dropping ``mmu_lock``, as separate steps with a pending flag in between. Memslot
updates and harvests serialise on ``slots_lock``, hence at most one of those
flushes is pending (the ``idle`` condition below)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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
from checker.model.paths import EnableFlush, HarvestFlush, Paths
from checker.model.vocabulary import Spte

B = TypeVar("B")


def idle(L: Logic[B], w: Window[B]) -> B:
    """No flush after unlock is pending (``slots_lock`` is free)."""
    return L.not_(L.or_(w.slot.harvest_flush_pending, w.slot.enable_flush_pending))


def _enable_dirty_logging(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Write-protect the slot (W cleared, MW kept), or with PML clear Dirty on every
    present SPTE (``kvm_mmu_slot_leaf_clear_dirty``); the flush comes after unlock,
    on the era's condition (v3.x flushed before unlocking). With manual-protect
    "initially all set" (``initially_set``, where the era has it), nothing is
    write-protected or cleaned and every dirty bit starts set.

    enabled = !logging && idle && (!initially_set || era has it);  logging' = 1;
    initially_set:  dirty_bit'[*] = 1
    otherwise:      pml ? D'[*] = 0 : W'[*] = 0;  dirty_bit'[*] = 0;
                    enable_flush_pending' = per paths.enable_flush (over every SPTE;
                    CHANGED: some present SPTE changed; RULE: what the rule
                    answered, ORed in by ``apply``)
    """
    initially_set = p["initially_set"]
    pml = w.slot.pml
    enabled = L.and_(
        L.not_(w.slot.dirty_logging),
        idle(L, w),
        L.or_(L.not_(initially_set), L.const(paths.initially_set)),
    )
    sptes = w.shared.sptes
    protect = L.not_(initially_set)
    # what the step clears on a present SPTE: D with PML, W otherwise
    cleared = [L.and_(s.present, L.ite(pml, s.dirty, s.writable)) for s in sptes]
    later = enable_flush_owed(L, paths, sptes, cleared, pml)
    after = w.with_sptes(
        {
            i: dataclasses.replace(
                s,
                writable=L.and_(s.writable, L.or_(initially_set, pml)),
                dirty=L.and_(s.dirty, L.or_(initially_set, L.not_(pml))),
            )
            for i, s in enumerate(sptes)
        }
    )
    after = after.with_every_frame(dirty_bit=initially_set)
    after = after.with_slot(
        dirty_logging=L.const(True), enable_flush_pending=L.and_(protect, later)
    )
    now = L.and_(protect, L.const(paths.enable_flush is EnableFlush.LOCKED))
    return Effect(enabled, after, now)


def enable_flush_owed(
    L: Logic[B], paths: Paths, sptes: Sequence[Spte[B]], cleared: Sequence[B], pml: B
) -> B:
    """Whether enabling logging owes a flush after unlock, on the era's condition,
    given the SPTEs it visited and, for each, whether it cleared a bit (W, or D
    with PML). RULE's flush is the rule's answer, which ``apply`` ORs in.

    ALWAYS: 1;  CHANGED: OR cleared;  MMU_WRITABLE: OR P && MW;
    PRESENT: pml ? OR cleared : OR P;  RULE, NEVER, LOCKED: 0
    """
    return {
        EnableFlush.ALWAYS: L.const(True),
        EnableFlush.CHANGED: L.or_(*cleared),
        EnableFlush.MMU_WRITABLE: L.or_(*(L.and_(s.present, s.mmu_writable) for s in sptes)),
        # clear_dirty_gfn_range() reported only the SPTEs it changed (v5.10)
        EnableFlush.PRESENT: L.ite(pml, L.or_(*cleared), L.or_(*(s.present for s in sptes))),
        EnableFlush.RULE: L.const(False),
        EnableFlush.NEVER: L.const(False),
        EnableFlush.LOCKED: L.const(False),
    }[paths.enable_flush]


def _enable_in_era(op: Operation, paths: Paths) -> Operation:
    """Before b64d740ea7dd (v6.0) the shadow MMU's flush after enabling logging was
    owed iff some ``mmu_spte_update`` of the write-protect asked for one; with PML,
    of the clearing of Dirty bits (``spte_clear_dirty`` -> ``mmu_spte_update``)."""
    if paths.enable_flush is not EnableFlush.RULE:
        return op
    return dataclasses.replace(
        op,
        flush=Flush.LATER,
        pending="enable_flush_pending",
        source=(
            "kvm_mmu_slot_apply_flags() -> kvm_mmu_slot_remove_write_access() (arch/x86/"
            "kvm/x86.c, mmu.c) before b64d740ea7dd (v6.0): flushes after unlock iff "
            "spte_write_protect's mmu_spte_update asked on some SPTE it changed"
        ),
    )


def _enable_flush(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The flush after enabling dirty logging.  enabled = pending;  pending' = 0; flush"""
    after = w.with_slot(enable_flush_pending=L.const(False))
    return Effect(w.slot.enable_flush_pending, after, L.const(True))


def _harvest(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Reap the dirty bitmap and write-protect each reaped gfn's SPTE (W cleared, MW
    kept), or with PML clear its Dirty bit (``kvm_mmu_clear_dirty_pt_masked``,
    ``clear_dirty_pt_masked``), then unlock; the flush follows as the paths say
    (today: after unlock iff something was reaped).

    reaped = OR dirty_bit[*];  enabled = logging && idle && (reaped || policy ALWAYS);
    pml ? D'[spte_of(g)] = D && !dirty_bit[g] : W'[spte_of(g)] = W && !dirty_bit[g];
    dirty_bit'[*] = 0;  harvest_flush_pending' = per paths.harvest_flush
    """
    shape_sptes = w.shared.sptes
    frames = w.shared.frames
    pml = w.slot.pml
    policy = paths.harvest_flush
    reaped = L.or_(*(x.dirty_bit for x in frames))
    # a harvest that reaps nothing changes nothing, unless it flushes regardless
    wanted = L.or_(reaped, L.const(policy is HarvestFlush.ALWAYS))
    enabled = L.and_(w.slot.dirty_logging, idle(L, w), wanted)
    # the reaped gfns of each SPTE
    protect: dict[int, list[B]] = {}
    for g, x in enumerate(frames):
        protect.setdefault(w.spte_of[g], []).append(x.dirty_bit)
    hit = {i: L.or_(*protect.get(i, [])) for i in range(len(shape_sptes))}
    changed = L.or_(
        *(
            L.and_(hit[i], s.present, L.ite(pml, s.dirty, s.writable))
            for i, s in enumerate(shape_sptes)
        )
    )
    later = {
        HarvestFlush.REAPED: reaped,
        HarvestFlush.CHANGED: changed,
        HarvestFlush.ALWAYS: L.const(True),
        HarvestFlush.NEVER: L.const(False),
        HarvestFlush.LOCKED: L.const(False),
    }[policy]
    now = L.and_(L.const(policy is HarvestFlush.LOCKED), reaped)
    after = w.with_sptes(
        {
            i: dataclasses.replace(
                s,
                writable=L.and_(s.writable, L.not_(L.and_(hit[i], L.not_(pml)))),
                dirty=L.and_(s.dirty, L.not_(L.and_(hit[i], pml))),
            )
            for i, s in enumerate(shape_sptes)
        }
    )
    f = L.const(False)
    after = after.with_every_frame(dirty_bit=f)
    after = after.with_slot(harvest_flush_pending=later)
    return Effect(enabled, after, now)


def _harvest_flush(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """The harvest's flush, after unlock.  enabled = pending;  pending' = 0;  flush"""
    after = w.with_slot(harvest_flush_pending=L.const(False))
    return Effect(w.slot.harvest_flush_pending, after, L.const(True))


def _disable_dirty_logging(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """enabled = logging && idle;  logging' = 0;  dirty_bit'[*] = 0"""
    f = L.const(False)
    after = w.with_slot(dirty_logging=f)
    after = after.with_every_frame(dirty_bit=f)
    return Effect(L.and_(w.slot.dirty_logging, idle(L, w)), after, f)


ENABLE_DIRTY_LOGGING = Operation(
    name="enable_dirty_logging",
    title="enable dirty logging (write-protect the slot)",
    function="kvm_mmu_slot_apply_flags",
    path="kvm_mmu_slot_apply_flags -> kvm_mmu_slot_remove_write_access -> spte_write_protect",
    source=(
        "kvm_mmu_slot_apply_flags() (arch/x86/kvm/x86.c): the flush after unlock is "
        "unconditional since b64d740ea7dd (v6.0), conditional before (paths."
        "enable_flush), under the lock in v3.x; manual-protect 'initially all set' "
        "(v5.7) write-protects nothing at 4K"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.SLOT,
    flush=Flush.DEFERRED,
    writes=frozenset({Part.SPTE, Part.FRAME, Part.SLOT}),
    effect=_enable_dirty_logging,
    params=("initially_set",),
    configure=_enable_in_era,
)

ENABLE_FLUSH = Operation(
    name="enable_flush",
    title="flush after enabling dirty logging",
    function="kvm_flush_remote_tlbs_memslot",
    path="kvm_mmu_slot_apply_flags -> kvm_flush_remote_tlbs_memslot",
    source="kvm_mmu_slot_apply_flags() (arch/x86/kvm/x86.c) since b64d740ea7dd",
    actor=ActorKind.HOST,
    lock=LockMode.NONE,
    reach=Reach.SLOT,
    flush=Flush.ALWAYS,
    writes=frozenset({Part.SLOT}),
    effect=_enable_flush,
)

HARVEST = Operation(
    name="harvest",
    title="dirty-log harvest (reap and write-protect)",
    function="kvm_arch_mmu_enable_log_dirty_pt_masked",
    path=(
        "kvm_get_dirty_log_protect/kvm_clear_dirty_log_protect -> "
        "kvm_arch_mmu_enable_log_dirty_pt_masked -> spte_write_protect"
    ),
    source=(
        "kvm_get_dirty_log_protect()/kvm_clear_dirty_log_protect() (virt/kvm/"
        "kvm_main.c); the flush's timing per era is paths.harvest_flush"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.SLOT,
    flush=Flush.DEFERRED,
    writes=frozenset({Part.SPTE, Part.FRAME, Part.SLOT}),
    effect=_harvest,
)

HARVEST_FLUSH = Operation(
    name="harvest_flush",
    title="harvest's flush after unlock",
    function="kvm_flush_remote_tlbs_memslot",
    path=("kvm_get_dirty_log_protect/kvm_clear_dirty_log_protect -> kvm_flush_remote_tlbs_memslot"),
    source="kvm_get_dirty_log_protect() (virt/kvm/kvm_main.c)",
    actor=ActorKind.HOST,
    lock=LockMode.NONE,
    reach=Reach.SLOT,
    flush=Flush.ALWAYS,
    writes=frozenset({Part.SLOT}),
    effect=_harvest_flush,
)

DISABLE_DIRTY_LOGGING = Operation(
    name="disable_dirty_logging",
    title="disable dirty logging",
    function="kvm_mmu_slot_apply_flags",
    path="kvm_mmu_slot_apply_flags",
    source="kvm_mmu_slot_apply_flags() (arch/x86/kvm/x86.c)",
    actor=ActorKind.HOST,
    lock=LockMode.NONE,
    reach=Reach.SLOT,
    flush=Flush.NEVER,
    writes=frozenset({Part.SLOT, Part.FRAME}),
    effect=_disable_dirty_logging,
)
