"""The flush rule under check, and the KVM paths around it that differ by era."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TypeVar

from checker.model.logic import Logic
from checker.model.vocabulary import Spte

B = TypeVar("B")


class FlushRule(Protocol):
    """``mmu_spte_update``'s flush condition: flush iff ``decide(old, new)``."""

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B: ...


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
