"""The SPTE/TLB model of KVM x86's MMU: the single source of truth.

* :mod:`.vocabulary`: the state, declared once (SPTEs, gfns, the memslot, each
  vCPU's TLB entries, each actor's locals), and the generic walk over its records;
* :mod:`.operation`: how an operation is declared (actor, parameters, lock mode,
  reach, what it writes, its flush, its traits) and the frame every interpretation
  applies after it;
* :mod:`.operations`: the operations, grouped the way the kernel groups them;
* :mod:`.properties`: the properties, by their violations;
* :mod:`.paths`: the flush rule and the KVM paths around it that differ by era;
* :mod:`.declaration`: :data:`MODEL`, all of the above as one value;
* :mod:`.logic`: the Boolean algebras it is all written against. With Python bools
  it is the step function, with z3 terms the transition relation, over an
  uninterpreted vCPU sort the proof for every number of vCPUs
  (``checker.engines``).

Atomicity
---------
In the shadow MMU a section under ``mmu_lock`` (SPTE write, then its flush) is one
step (``Hold.ATOMIC``). Lockless actors (TLB fills, guest writes, fast page faults)
that would interleave inside the section are equivalent to ones ordered before or
after it: a fill or write before the flush is either dropped by that flush or
happened under the old SPTE, and the properties only speak of states in which the
lock is free. Flushes that KVM issues after dropping the lock (dirty-log harvest,
enabling dirty logging) are separate steps, with a pending flag in between. An
operation that holds the lock across steps declares it (``Hold.ACQUIRE`` ...
``Hold.RELEASE``), and the model then tracks who holds it.
"""

from checker.model.declaration import (
    MODEL,
    OPERATION_BY_NAME,
    OPERATIONS,
    PARAMS,
    Model,
    System,
)
from checker.model.operation import (
    ActorKind,
    Effect,
    Flush,
    Hold,
    LockMode,
    Operation,
    Outcome,
    Part,
    Reach,
    Trait,
    Window,
    apply,
    spte_changed,
)
from checker.model.paths import AgingWithoutAd, EnableFlush, FlushRule, HarvestFlush, Paths
from checker.model.properties import PROPERTIES, PROPERTY_BY_NAME, Kind, Property
from checker.model.vocabulary import (
    BIT_POSITIONS,
    FRAME_FIELDS,
    SLOT_FIELDS,
    SPTE_FIELDS,
    TLB_FIELDS,
    Actor,
    Frame,
    Layout,
    Local,
    Shape,
    Shared,
    Slot,
    Spte,
    Tlb,
    TlbEntry,
    spte_value,
)

__all__ = [
    "BIT_POSITIONS",
    "FRAME_FIELDS",
    "MODEL",
    "OPERATIONS",
    "OPERATION_BY_NAME",
    "PARAMS",
    "PROPERTIES",
    "PROPERTY_BY_NAME",
    "SLOT_FIELDS",
    "SPTE_FIELDS",
    "TLB_FIELDS",
    "Actor",
    "ActorKind",
    "AgingWithoutAd",
    "Effect",
    "EnableFlush",
    "Flush",
    "FlushRule",
    "Frame",
    "HarvestFlush",
    "Hold",
    "Kind",
    "Layout",
    "Local",
    "LockMode",
    "Model",
    "Operation",
    "Outcome",
    "Part",
    "Paths",
    "Property",
    "Reach",
    "Shape",
    "Shared",
    "Slot",
    "Spte",
    "System",
    "Tlb",
    "TlbEntry",
    "Trait",
    "Window",
    "apply",
    "spte_changed",
    "spte_value",
]
