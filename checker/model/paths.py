"""The flush rule under check, and what a kernel era does around it.

:class:`Paths` is one MMU of one kernel era: which MMU (the shadow MMU or the TDP
MMU), and, per operation whose code changed between releases, which variant that
era runs. Eras are data (``specs/eras/*.toml``, :mod:`checker.rules.specs`): each
era names a :class:`Paths` per MMU, and each choice its source in the kernel.
The model an era checks is :func:`checker.model.declaration.model_for` of it: the
operations that exist in that MMU and era, each as that era performs it.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, fields
from typing import Protocol, TypeVar

from checker.model.logic import Logic
from checker.model.vocabulary import Spte

B = TypeVar("B")


class FlushRule(Protocol):
    """``mmu_spte_update``'s flush condition: flush iff ``decide(old, new)``."""

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B: ...


class Mmu(enum.Enum):
    """Which of KVM's two MMUs maps the gfns."""

    #: rmap-based: shadow paging, nested TDP, and TDP with ``tdp_mmu=N``; every
    #: writer holds ``mmu_lock`` for write and goes through ``mmu_spte_update``
    SHADOW = "shadow"
    #: ``arch/x86/kvm/mmu/tdp_mmu.c`` (v5.10+, default for TDP on 64-bit hosts):
    #: faults hold ``mmu_lock`` for read and write with ``cmpxchg``; no writer asks
    #: ``mmu_spte_update``, each caller decides its own flush
    TDP = "tdp"


class HarvestFlush(enum.Enum):
    """When a dirty-log harvest flushes the TLBs."""

    #: after dropping mmu_lock, iff something was reaped (v3.17 and later)
    REAPED = "reaped"
    #: after dropping mmu_lock, iff the write-protect changed an SPTE
    CHANGED = "changed"
    #: after dropping mmu_lock, even if nothing was reaped
    ALWAYS = "always"
    NEVER = "never"
    #: before dropping mmu_lock, iff something was reaped (v3.x)
    LOCKED = "locked"


class EnableFlush(enum.Enum):
    """When enabling dirty logging flushes the TLBs."""

    #: after dropping mmu_lock, unconditionally (b64d740ea7dd, v6.0)
    ALWAYS = "always"
    #: after dropping mmu_lock, iff the step changed some present SPTE (the TDP MMU
    #: before v6.0: its write-protect reports whether it cleared a W, its clearing
    #: of Dirty bits under PML whether it cleared a D)
    CHANGED = "changed"
    #: after dropping mmu_lock, iff some SPTE was MMU-writable
    MMU_WRITABLE = "mmu_writable"
    #: after dropping mmu_lock, iff some SPTE was present (the TDP MMU in v5.10,
    #: whose write-protect reported every leaf it visited; its clearing of Dirty
    #: bits under PML reported only the SPTEs it changed, as ``CHANGED``)
    PRESENT = "present"
    #: after dropping mmu_lock, iff ``mmu_spte_update`` asked for a flush on some
    #: SPTE it write-protected: the rule's answer, ORed into a later flush (the
    #: shadow MMU before v6.0)
    RULE = "rule"
    NEVER = "never"
    #: before dropping mmu_lock, unconditionally (v3.x)
    LOCKED = "locked"


class AgingWithoutAd(enum.Enum):
    """What aging does to an SPTE when the MMU has no hardware A/D bits."""

    #: access-track it: clear W (and R), keep MW, no flush (v4.10 and later)
    ACCESS_TRACK = "access_track"
    #: zap it, with the zap's flush (before lockless access tracking)
    ZAP = "zap"


class Prefetch(enum.Enum):
    """Whether a fault with ``prefetch`` set rebuilds a present SPTE."""

    #: it does not: a prefetch on a present leaf is spurious (6385d01eec16, v6.13)
    NONE = "none"
    #: it rebuilds the SPTE as a prefetch (before v6.13): with A/D bits, writable as
    #: permitted and not accessed; without, access-tracked
    REFRESH = "refresh"


class Sync(enum.Enum):
    """What ``FNAME(sync_spte)`` (the resync of an unsync shadow page) writes."""

    #: every SPTE rebuilt with prefetch semantics, even to an identical value
    EVERY_SPTE = "every_spte"
    #: only an SPTE whose access changed, still access-tracked without A/D bits
    CHANGED_ACCESS = "changed_access"
    #: only an SPTE whose access changed, Accessed set, never access-tracked
    #: (4e44ab0a7778, v6.13)
    CHANGED_ACCESS_ACCESSED = "changed_access_accessed"


class FaultFlush(enum.Enum):
    """What the TDP MMU's fault does after replacing a present leaf SPTE."""

    #: nothing: a leaf-to-leaf replacement never flushes (before v6.13)
    NONE = "none"
    #: it asserts that the rule asks for no flush (``WARN_ON_ONCE``) and flushes if
    #: it does (v6.13)
    ASSERT_RULE = "assert_rule"


class WriteProtect(enum.Enum):
    """How the TDP MMU write-protects a gfn for write-tracking."""

    #: clears W and MW on every SPTE that is MMU-writable, flushes iff it changed
    #: one (7c8a4742c4ab, v5.17)
    MMU_WRITABLE = "mmu_writable"
    #: skips SPTEs that are not writable, so an SPTE with W = 0 but MW = 1 keeps MW
    #: (v5.10 .. v5.16)
    SKIP_NOT_WRITABLE = "skip_not_writable"


class HugeWriteProtect(enum.Enum):
    """What manual-protect dirty logging in "initially all set" mode does to a 2M
    SPTE (read by the model of a shape with one, :class:`checker.model.Shape`)."""

    #: the era has no "initially all set" mode
    NONE = "none"
    #: enabling logging write-protects huge SPTEs (W cleared, MW kept) with the
    #: enable's flush; a clear write-protects 4K SPTEs only (v5.7 .. v5.13)
    AT_ENABLE = "at_enable"
    #: enabling write-protects nothing; each clear write-protects the 2M SPTE over
    #: what it clears (``kvm_mmu_slot_gfn_write_protect(PG_LEVEL_2M)``): W and MW
    #: cleared, the answer ignored, the flush after unlock iff a bit was reaped
    AT_CLEAR = "at_clear"
    #: a fix: as ``AT_CLEAR``, but W cleared and MW kept
    AT_CLEAR_W_ONLY = "at_clear_w_only"
    #: a fix: as ``AT_CLEAR``, and a flush before unlock iff the 2M SPTE changed
    AT_CLEAR_FLUSHED = "at_clear_flushed"


class EagerSplit(enum.Enum):
    """Whether a clear first splits the huge pages over what it clears."""

    NONE = "none"
    #: ``kvm_mmu_try_split_huge_pages``: the 2M SPTE becomes a page table of 4K
    #: SPTEs with its bits, no flush; best effort (it fails when allocation fails,
    #: and is off with ``eager_page_split=N``)
    CLEAR = "clear"


class FastHuge(enum.Enum):
    """Whether the lockless fast path makes a huge SPTE writable."""

    #: not in a dirty-logged slot: it would log only the faulting gfn
    REFUSE_LOGGED = "refuse_logged"
    #: never (only 4K SPTEs are fixed)
    REFUSE = "refuse"
    #: always: no check (no release; what fix (a) must not meet)
    ALLOW = "allow"


class HugeFault(enum.Enum):
    """What a fault that must map 4K does to the huge SPTE in its way."""

    #: zaps it and flushes before mapping the 4K SPTE (``drop_large_spte``)
    ZAP = "zap"
    #: splits it into 4K SPTEs with its bits, no flush (``tdp_mmu_split_huge_page``)
    SPLIT = "split"


@dataclass(frozen=True)
class Paths:
    """One MMU of one kernel era: the variants of the operations whose code changed
    between releases. The defaults are the shadow MMU of v6.4 .. v6.12
    (``specs/eras/v6.4-v6.12.toml``)."""

    mmu: Mmu = Mmu.SHADOW
    harvest_flush: HarvestFlush = HarvestFlush.REAPED
    enable_flush: EnableFlush = EnableFlush.ALWAYS
    aging_without_ad: AgingWithoutAd = AgingWithoutAd.ACCESS_TRACK
    prefetch: Prefetch = Prefetch.REFRESH
    sync: Sync = Sync.CHANGED_ACCESS
    fault_flush: FaultFlush = FaultFlush.NONE
    write_protect: WriteProtect = WriteProtect.MMU_WRITABLE
    #: the shadow MMU's aging asserts ``mmu_spte_update``'s answer instead of
    #: ignoring it (``WARN_ON_ONCE``, v6.13)
    aging_asserted: bool = False
    #: the lockless fast page fault (direct MMUs)
    fast_page_fault: bool = True
    #: enabling dirty logging may use manual-protect "initially all set" (v5.3+)
    initially_set: bool = True
    #: dirty logging by Dirty bits (PML, 843e4330573c, v4.0) exists: a VM with A/D
    #: bits may log writes through the CPU's setting of Dirty instead of write faults
    pml: bool = False
    #: the TDP MMU's writers under mmu_lock held for write exchange an SPTE with
    #: volatile bits atomically (ba3a6120a4e7, v5.18); before, they stored it with a
    #: plain write computed from an earlier read, losing a Dirty bit the CPU set in
    #: between. Read only by the TDP MMU's aging.
    tdp_atomic_writes: bool = True
    #: what "initially all set" dirty logging does to a 2M SPTE (read only by the
    #: model of a shape with one)
    huge_write_protect: HugeWriteProtect = HugeWriteProtect.AT_CLEAR
    #: a clear's eager split of huge pages
    eager_split: EagerSplit = EagerSplit.CLEAR
    #: the fast path and huge SPTEs
    fast_huge: FastHuge = FastHuge.REFUSE_LOGGED
    #: a fault that must map 4K under a huge SPTE
    huge_fault: HugeFault = HugeFault.ZAP

    def one_gfn(self) -> Paths:
        """These paths as the one-gfn model reads them: the huge-page choices
        (:data:`HUGE_PAGE_CHOICES`), which only the model of a 2M SPTE reads, at
        their defaults (two eras equal here have the same one-gfn model)."""
        defaults = Paths()
        return dataclasses.replace(self, **{n: getattr(defaults, n) for n in HUGE_PAGE_CHOICES})


#: the choices only the model of a 2M SPTE reads
HUGE_PAGE_CHOICES = ("huge_write_protect", "eager_split", "fast_huge", "huge_fault")


#: every choice of :class:`Paths`, by field: its enum, or ``bool``
CHOICES: dict[str, type] = {
    f.name: (bool if f.type in ("bool", bool) else globals()[str(f.type)]) for f in fields(Paths)
}
