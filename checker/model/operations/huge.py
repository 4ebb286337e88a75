"""Huge pages under manual-protect dirty logging (``arch/x86/kvm/mmu/mmu.c``,
``tdp_mmu.c``, ``arch/x86/kvm/x86.c``, ``virt/kvm/kvm_main.c``): the operations of
a shape with a 2M SPTE (:class:`checker.model.Shape`, ``huge``), which know the
level of the SPTE they touch.

The shape: gfns in one 2M range, each with its own 4K SPTE, and the 2M SPTE over
all of them. While the 2M SPTE is present it maps every gfn and no 4K SPTE is
present (a 2M leaf has no page table below it); a split or a fault that must map
4K replaces it. Every operation here keeps that so. On a shape without a 2M SPTE
they act on the 4K SPTEs alone.

What a vCPU's TLB holds is one entry per gfn. A 2M TLB entry is the entries of the
gfns it covers: a walk through the 2M SPTE fills the walked gfn's entry, and a
walk of each gfn in turn, with nothing in between, fills them all. The per-gfn
entries can do more than one 2M entry (be evicted one at a time, be filled at
different times); they are what a CPU holds when the guest maps the range with
4K pages (the translation cached is then 4K, whatever the SPTE's size). KVM's
flushes drop every entry of every vCPU.

Not modelled here (the model of one gfn has them): MMU notifiers, aging, PML
(the configuration is held without it), disabling logging, unsync pages, and a
host mapping that is not writable.
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
from checker.model.operations.dirty_log import enable_flush_owed, idle
from checker.model.paths import (
    EagerSplit,
    EnableFlush,
    FastHuge,
    FaultFlush,
    HugeFault,
    HugeWriteProtect,
    Mmu,
    Paths,
)
from checker.model.vocabulary import Spte, select

B = TypeVar("B")


def _absent(L: Logic[B]) -> Spte[B]:
    f = L.const(False)
    return Spte(f, f, f, f, f, f, f)


def _big(L: Logic[B], w: Window[B]) -> Spte[B]:
    """The 2M SPTE; not present on a shape without one."""
    return w.shared.sptes[w.huge] if w.huge is not None else _absent(L)


def _leaf(L: Logic[B], w: Window[B], permitted: B) -> Spte[B]:
    """``make_spte``'s leaf for a fault: present, host-writable, writable and
    MMU-writable as ``permitted``, Accessed and (if writable) Dirty with A/D bits.

    P = HW = 1;  W = MW = permitted;  A = ad;  D = ad && permitted;  AT = 0
    """
    ad = w.slot.ad_enabled
    t = L.const(True)
    return Spte(
        present=t,
        writable=permitted,
        mmu_writable=permitted,
        host_writable=t,
        accessed=ad,
        dirty=L.and_(ad, permitted),
        access_tracked=L.const(False),
    )


def _with_levels(w: Window[B], big: Spte[B], own: dict[int, Spte[B]]) -> Window[B]:
    """The window with the 2M SPTE (if the shape has one) and some 4K SPTEs replaced."""
    return w.with_sptes(own if w.huge is None else {**own, w.huge: big})


def _split(L: Logic[B], w: Window[B], when: B) -> tuple[Spte[B], dict[int, Spte[B]]]:
    """If ``when`` and the 2M SPTE is present: every gfn's 4K SPTE takes its bits and
    the 2M SPTE goes (``tdp_mmu_split_huge_page``, ``shadow_mmu_split_huge_page``).

    splits = when && P(2M);  own'[g] = splits ? 2M : own[g];  2M' = splits ? 0 : 2M
    """
    big = _big(L, w)
    splits = L.and_(when, big.present)
    own = {
        w.spte_of[g]: select(L, splits, big, w.shared.sptes[w.spte_of[g]])
        for g in range(len(w.shared.frames))
    }
    return select(L, splits, _absent(L), big), own


# --- a vCPU's faults ----------------------------------------------------------------------


def _page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Slow path, write or read fault on the gfn (the host maps it writable; with
    ``host_huge`` the host backs the whole 2M range with one huge page).

    A 2M mapping is allowed iff the host backs it, the slot is not dirty-logged and
    no gfn of the range is write-tracked (``kvm_mmu_max_mapping_level``,
    ``kvm_mmu_gfn_disallow_lpage``). The leaf is ``make_spte``'s: writable and MW
    iff no gfn it maps is write-tracked; a writable leaf in a logged slot marks
    the gfn dirty.

    * 2M SPTE present, write fault, W = 0 (a fault through a present entry that
      allows the access does not happen):
      - 2M allowed: the 2M SPTE rebuilt;
      - otherwise (logging, or a gfn tracked) the fault maps 4K: ``HugeFault.ZAP``
        zaps the 2M SPTE and flushes (``drop_large_spte``), ``SPLIT`` splits it
        without a flush (the TDP MMU's ``tdp_mmu_split_huge_page``); then the
        gfn's 4K SPTE is installed.
    * 2M SPTE not present, the gfn's 4K SPTE not present: install the 2M SPTE if
      allowed and no 4K SPTE of the range is present, else the 4K SPTE.
    * the gfn's 4K SPTE present: a write fault with W = 0 on an untracked gfn
      rebuilds it; others are spurious or emulated, and change nothing.

    flush = (2M present && !2M allowed && ZAP); the rule is asked (as ``op.flush``
    says) about the leaf set, not about the 2M SPTE zapped or split
    """
    write = p["write_fault"]
    tracked_any = L.or_(*(x.write_tracked for x in w.shared.frames))
    logging = w.slot.dirty_logging
    has_big = L.const(w.huge is not None)
    huge_allowed = L.and_(has_big, p["host_huge"], L.not_(logging), L.not_(tracked_any))
    big = _big(L, w)
    own = w.shared.sptes[w.spte_index]
    tracked = w.frame.write_tracked
    others_present = L.or_(*(s.present for i, s in enumerate(w.shared.sptes) if i != w.huge))

    # the 2M SPTE is in the way
    on_big = L.and_(big.present, write, L.not_(big.writable))
    keep_big = L.and_(on_big, huge_allowed)
    below = L.and_(on_big, L.not_(huge_allowed))
    splits = L.and_(below, L.const(paths.huge_fault is HugeFault.SPLIT))
    zaps = L.and_(below, L.const(paths.huge_fault is HugeFault.ZAP))
    split_big, split_own = _split(L, w, splits)
    # nothing mapped: a new leaf, 2M if allowed and the range has no page table
    fresh = L.and_(L.not_(big.present), L.not_(own.present))
    new_big = L.and_(fresh, huge_allowed, L.not_(others_present))
    # the gfn's 4K SPTE: rebuilt on a write fault that it does not allow
    rebuild = L.and_(L.not_(big.present), own.present, write, L.not_(own.writable), L.not_(tracked))
    enabled = L.or_(on_big, fresh, rebuild)

    huge_leaf = _leaf(L, w, L.const(True))
    small_leaf = _leaf(L, w, L.not_(tracked))
    maps_4k = L.or_(below, L.and_(fresh, L.not_(new_big)), rebuild)
    big_after = select(
        L,
        L.or_(keep_big, new_big),
        huge_leaf,
        select(L, zaps, _absent(L), split_big),
    )
    own_after = dict(split_own)
    own_after[w.spte_index] = select(L, maps_4k, small_leaf, split_own[w.spte_index])
    after = _with_levels(w, big_after, own_after)
    # a 2M leaf is never made in a logged slot, so only a 4K one marks the gfn
    marks = L.and_(logging, maps_4k, small_leaf.writable)
    after = after.with_frame(dirty_bit=L.or_(w.frame.dirty_bit, marks))
    # the rule is asked about the leaf the fault sets (mmu_set_spte, or the TDP MMU's
    # target level), not about the zap or split of the 2M SPTE in its way
    asked = {w.spte_index: maps_4k}
    if w.huge is not None:
        asked[w.huge] = keep_big
    return Effect(enabled, after, zaps, asked_about=asked)


def _fault_in_era(op: Operation, paths: Paths) -> Operation:
    """The shadow MMU's fault flushes before unlocking iff ``mmu_spte_update`` asked
    (``mmu_set_spte``); the TDP MMU's ignores the answer before v6.13 and asserts it
    since 1a175082b190, under ``mmu_lock`` held for read."""
    if paths.mmu is Mmu.SHADOW:
        return op
    asserted = paths.fault_flush is FaultFlush.ASSERT_RULE
    return dataclasses.replace(
        op,
        flush=Flush.ASSERTED if asserted else Flush.NEVER,
        lock=LockMode.READ,
        function="kvm_tdp_mmu_map",
        path=(
            "kvm_tdp_mmu_map -> tdp_mmu_split_huge_page / tdp_mmu_zap_spte_atomic, "
            "tdp_mmu_map_handle_target_level"
        ),
        source=(
            "kvm_tdp_mmu_map() (arch/x86/kvm/mmu/tdp_mmu.c): cmpxchg under mmu_lock "
            "held for read; a huge SPTE in the way is "
            + (
                "split without a flush"
                if paths.huge_fault is HugeFault.SPLIT
                else "zapped, with a flush"
            )
        ),
    )


def _fast_page_fault(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Lockless write fault: an MMU-writable SPTE that is not writable is made
    writable by ``cmpxchg``, and the faulting gfn marked dirty in a logged slot.
    A huge SPTE is left to the slow path as the era says (``FastHuge``): in a
    dirty-logged slot, fixing it would log only the faulting gfn while the other
    gfns under it become writable unlogged.

    enabled = P && MW && !W && !(mapped by 2M && refused);  W' = 1;
    dirty_bit' |= logging
    refused = REFUSE_LOGGED: logging;  REFUSE: true;  ALLOW: false
    """
    s = w.spte
    big = _big(L, w)
    logging = w.slot.dirty_logging
    refused = {
        FastHuge.REFUSE_LOGGED: logging,
        FastHuge.REFUSE: L.const(True),
        FastHuge.ALLOW: L.const(False),
    }[paths.fast_huge]
    enabled = L.and_(
        s.present,
        s.mmu_writable,
        L.not_(s.writable),
        L.not_(L.and_(big.present, refused)),
    )
    after = w.with_spte(writable=L.const(True))
    after = after.with_frame(dirty_bit=L.or_(w.frame.dirty_bit, logging))
    return Effect(enabled, after, L.const(False))


def _fast_in_era(op: Operation, paths: Paths) -> Operation | None:
    return op if paths.fast_page_fault else None


# --- the host: dirty logging in "initially all set" mode ---------------------------------


def _enable(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """Enable logging with manual-protect "initially all set": every dirty bit set,
    no 4K SPTE touched. Before the clear took over (``HugeWriteProtect.AT_ENABLE``)
    the 2M SPTE is write-protected, W cleared and MW kept
    (``kvm_mmu_slot_remove_write_access(.., PG_LEVEL_2M)``), with the era's flush
    after unlock; since, nothing is write-protected and nothing flushed.

    enabled = !logging && idle;  logging' = 1;  dirty_bit'[*] = 1;
    AT_ENABLE: W'(2M) = 0;  enable_flush_pending' = owed(era, 2M SPTE)
    """
    enabled = L.and_(L.not_(w.slot.dirty_logging), idle(L, w))
    after = w.with_every_frame(dirty_bit=L.const(True))
    after = after.with_slot(dirty_logging=L.const(True))
    if paths.huge_write_protect is not HugeWriteProtect.AT_ENABLE or w.huge is None:
        return Effect(enabled, after, L.const(False))
    big = _big(L, w)
    cleared = L.and_(big.present, big.writable)
    owed = enable_flush_owed(L, paths, [big], [cleared], L.const(False))
    after = after.with_sptes({w.huge: dataclasses.replace(big, writable=L.const(False))})
    after = after.with_slot(enable_flush_pending=owed)
    now = L.const(paths.enable_flush is EnableFlush.LOCKED)
    return Effect(enabled, after, now)


def _enable_in_era(op: Operation, paths: Paths) -> Operation | None:
    if paths.huge_write_protect is HugeWriteProtect.NONE:
        return None
    if paths.huge_write_protect is HugeWriteProtect.AT_ENABLE and (
        paths.enable_flush is EnableFlush.RULE
    ):
        return dataclasses.replace(op, flush=Flush.LATER, pending="enable_flush_pending")
    return op


def _clear(L: Logic[B], w: Window[B], p: Params[B], paths: Paths) -> Effect[B]:
    """``KVM_CLEAR_DIRTY_LOG`` of the gfn's bit, under ``slots_lock`` and ``mmu_lock``
    (``kvm_clear_dirty_log_protect`` -> ``kvm_arch_mmu_enable_log_dirty_pt_masked``):

    1. the bit is reaped (a clear of a bit that is not set does nothing);
    2. with ``EagerSplit.CLEAR``, the split of the 2M SPTE is tried (``split``: it
       ran and succeeded; it does not run with ``eager_page_split=N`` or
       ``tdp_mmu=N``, and fails when allocation fails);
    3. the 2M SPTE over the gfn is write-protected as ``HugeWriteProtect`` says
       (``kvm_mmu_slot_gfn_write_protect(.., PG_LEVEL_2M)``, its answer ignored);
    4. the gfn's 4K SPTE is write-protected, W cleared and MW kept
       (``kvm_mmu_write_protect_pt_masked``, ``pt_protect`` false);
    5. ``mmu_lock`` is dropped; the flush follows, after unlock, since a bit was
       reaped (``harvest_flush``).

    enabled = logging && idle && dirty_bit[g];  dirty_bit'[g] = 0;  pending' = 1;
    AT_CLEAR:         W'(2M) = MW'(2M) = 0
    AT_CLEAR_W_ONLY:  W'(2M) = 0
    AT_CLEAR_FLUSHED: W'(2M) = MW'(2M) = 0, flush = P(2M) && (W(2M) || MW(2M))
    W'(own[g]) = 0
    """
    enabled = L.and_(w.slot.dirty_logging, idle(L, w), w.frame.dirty_bit)
    split = p["split"] if paths.eager_split is EagerSplit.CLEAR else L.const(False)
    big, own = _split(L, w, split)
    mode = paths.huge_write_protect
    f = L.const(False)
    flush = f
    if mode in (HugeWriteProtect.AT_CLEAR, HugeWriteProtect.AT_CLEAR_FLUSHED):
        if mode is HugeWriteProtect.AT_CLEAR_FLUSHED:
            flush = L.and_(big.present, L.or_(big.writable, big.mmu_writable))
        big = dataclasses.replace(big, writable=f, mmu_writable=f)
    elif mode is HugeWriteProtect.AT_CLEAR_W_ONLY:
        big = dataclasses.replace(big, writable=f)
    mine = own[w.spte_index]
    own[w.spte_index] = dataclasses.replace(mine, writable=f)
    after = _with_levels(w, big, own)
    after = after.with_frame(dirty_bit=f)
    after = after.with_slot(harvest_flush_pending=L.const(True))
    return Effect(enabled, after, flush)


def _clear_in_era(op: Operation, paths: Paths) -> Operation | None:
    if paths.huge_write_protect is HugeWriteProtect.NONE:
        return None
    if paths.eager_split is EagerSplit.NONE:
        return dataclasses.replace(op, params=())
    return op


HUGE_PAGE_FAULT = Operation(
    name="huge_page_fault",
    title="page fault, slow path, at 2M or 4K",
    function="mmu_set_spte",
    path=(
        "kvm_mmu_page_fault -> direct_page_fault -> kvm_mmu_hugepage_adjust, "
        "drop_large_spte, mmu_set_spte -> make_spte -> mmu_spte_update"
    ),
    source=(
        "kvm_mmu_hugepage_adjust()/kvm_mmu_max_mapping_level() (no huge page in a "
        "dirty-logged slot or over a write-tracked gfn), drop_large_spte() and "
        "mmu_set_spte() (arch/x86/kvm/mmu/mmu.c; read in v5.10 .. v7.1)"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.RULE,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_page_fault,
    params=("write_fault", "host_huge"),
    configure=_fault_in_era,
)

HUGE_FAST_PAGE_FAULT = Operation(
    name="huge_fast_page_fault",
    title="fast page fault (lockless), at 2M or 4K",
    function="fast_pf_fix_direct_spte",
    path="fast_page_fault -> fast_pf_fix_direct_spte",
    source=(
        "fast_page_fault() (arch/x86/kvm/mmu/mmu.c; the TDP MMU's SPTE through "
        "kvm_tdp_mmu_fast_pf_get_last_sptep since v5.13): W set on an MMU-writable "
        "SPTE, except a huge one in a dirty-logged slot"
    ),
    actor=ActorKind.VCPU,
    lock=LockMode.NONE,
    reach=Reach.GFN,
    flush=Flush.NEVER,
    writes=frozenset({Part.SPTE, Part.FRAME}),
    effect=_fast_page_fault,
    configure=_fast_in_era,
)

ENABLE_INITIALLY_SET = Operation(
    name="enable_initially_set",
    title='enable dirty logging, "initially all set"',
    function="kvm_mmu_slot_apply_flags",
    path="kvm_set_memory_region -> kvm_commit_memory_region -> kvm_mmu_slot_apply_flags",
    source=(
        "kvm_mmu_slot_apply_flags() (arch/x86/kvm/x86.c): with "
        "KVM_DIRTY_LOG_INITIALLY_SET (3c9bd4006bfc, v5.7) huge SPTEs were "
        "write-protected here until the clear took it over (v5.14); nothing since"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.SLOT,
    flush=Flush.DEFERRED,
    writes=frozenset({Part.SPTE, Part.FRAME, Part.SLOT}),
    effect=_enable,
    configure=_enable_in_era,
)

CLEAR_DIRTY_LOG = Operation(
    name="clear_dirty_log",
    title="KVM_CLEAR_DIRTY_LOG of one gfn",
    function="kvm_arch_mmu_enable_log_dirty_pt_masked",
    path=(
        "kvm_vm_ioctl_clear_dirty_log -> kvm_clear_dirty_log_protect -> "
        "kvm_arch_mmu_enable_log_dirty_pt_masked -> kvm_mmu_try_split_huge_pages, "
        "kvm_mmu_slot_gfn_write_protect(PG_LEVEL_2M), kvm_mmu_write_protect_pt_masked"
    ),
    source=(
        "kvm_clear_dirty_log_protect() (virt/kvm/kvm_main.c) and "
        "kvm_arch_mmu_enable_log_dirty_pt_masked() (arch/x86/kvm/mmu/mmu.c; read in "
        "v5.15 .. v7.1)"
    ),
    actor=ActorKind.HOST,
    lock=LockMode.WRITE,
    reach=Reach.GFN,
    flush=Flush.DEFERRED,
    writes=frozenset({Part.SPTE, Part.FRAME, Part.SLOT}),
    effect=_clear,
    params=("split",),
    configure=_clear_in_era,
)
