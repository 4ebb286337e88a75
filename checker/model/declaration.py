"""The model as a value: its vocabulary, operations and properties, in one place.

:data:`MODEL` is what every engine interprets. Operations are listed in canonical
order (counterexamples are minimal in this order); the locals of the actors are
those the operations declare, plus the ``mmu_lock`` holds when some operation
keeps the lock across steps; a model whose operations all complete in one step has
none, and its state is exactly the vocabulary's shared records and TLB entries.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from checker.model.logic import CONCRETE, Logic
from checker.model.operation import (
    HOLDS_READ,
    HOLDS_WRITE,
    Hold,
    Operation,
    Window,
)
from checker.model.operations import dirty_log, faults, guest, huge, notifier, shadow
from checker.model.paths import FlushRule, Paths
from checker.model.properties import PROPERTIES, Property
from checker.model.vocabulary import (
    CONFIG_FIELDS,
    SLOT_FIELDS,
    SPTE_FIELDS,
    Actor,
    Frame,
    Local,
    Shape,
    Shared,
    Slot,
    Spte,
    TlbEntry,
    actor_names,
    shared_names,
    without_kept_hash,
)

B = TypeVar("B")

#: every parameter any operation takes, in canonical (encoding) order
PARAMS: tuple[str, ...] = (
    "host_writable",
    "write_fault",
    "guest_writable",
    "initially_set",
    "host_huge",
    "split",
)


@dataclass(frozen=True)
class Model:
    """A transition system, declared: operations and properties over the vocabulary.

    ``locals`` are every actor's locals: those the operations declare, in order,
    then the ``mmu_lock`` holds if some operation keeps the lock across steps."""

    operations: tuple[Operation, ...]
    properties: tuple[Property, ...]
    #: the era has dirty logging by Dirty bits (``Paths.pml``): the configuration
    #: ``pml`` may be chosen
    pml: bool = False
    #: configuration fields held at one value (a check of the configurations that
    #: have them, e.g. a bug that needs PML), as (field, value) pairs
    fixed: tuple[tuple[str, bool], ...] = ()
    locals: tuple[Local, ...] = field(init=False, compare=False)
    _index: dict[str, int] = field(init=False, compare=False, repr=False)
    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [op.name for op in self.operations]
        if len(set(names)) != len(names):
            raise ValueError("two operations have the same name")
        for name, _ in self.fixed:
            if name not in CONFIG_FIELDS:
                raise ValueError(f"{name!r} is not a configuration field ({CONFIG_FIELDS})")
        for op in self.operations:
            unknown = set(op.params) - set(PARAMS)
            if unknown:
                raise ValueError(f"{op.name}: undeclared parameters {sorted(unknown)}")
        found: dict[str, Local] = {}
        for op in self.operations:
            for x in op.locals:
                found.setdefault(x.name, x)
        if any(op.hold is not Hold.ATOMIC for op in self.operations):
            # a reader's hold matters to writers, and a writer's to everyone
            found.setdefault(HOLDS_READ.name, HOLDS_READ)
            found.setdefault(HOLDS_WRITE.name, HOLDS_WRITE)
        object.__setattr__(self, "locals", tuple(found.values()))
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(names)})
        self._keep_hash()

    def _keep_hash(self) -> None:
        # kept: a model keys the engines' caches, and hashing it walks every operation
        object.__setattr__(self, "_hash", hash((self.operations, self.pml, self.fixed)))

    def __hash__(self) -> int:
        return self._hash

    # the kept hash is this process's (it hashes the effects' functions): a copy
    # unpickled elsewhere works its own out
    def __getstate__(self) -> dict[str, Any]:
        return without_kept_hash(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._keep_hash()

    def index(self, name: str) -> int:
        """The operation's place in the canonical order."""
        return self._index[name]

    def by_name(self, name: str) -> Operation:
        return self.operations[self.index(name)]

    def window(
        self, logic: Logic[B], shape: Shape, shared: Shared[B], actor: Actor[B], gfn: int
    ) -> Window[B]:
        """What a step of an actor on ``gfn`` sees."""
        assert shape.spte_of is not None
        return Window(shared, actor, gfn, shape.spte_of, self.locals, shape.huge_spte, logic)

    # -- the configuration: the slot fields CONFIG_FIELDS, free in the initial state
    def admits(self, logic: Logic[B], config: Mapping[str, B]) -> B:
        """The configuration is one a VM can have: PML needs A/D bits and an era
        that has it.  pml => ad_enabled && paths.pml"""
        allowed = logic.and_(config["ad_enabled"], logic.const(self.pml))
        held = (config[name] if value else logic.not_(config[name]) for name, value in self.fixed)
        return logic.and_(logic.or_(logic.not_(config["pml"]), allowed), *held)

    def configurations(self) -> tuple[dict[str, bool], ...]:
        """Every admitted configuration, in canonical order (each field False before
        True, the first field most significant): the initial states' order."""
        found = []
        for values in itertools.product((False, True), repeat=len(CONFIG_FIELDS)):
            config = dict(zip(CONFIG_FIELDS, values, strict=True))
            if self.admits(CONCRETE, config):
                found.append(config)
        return tuple(found)

    @staticmethod
    def config_of(slot: Slot[B]) -> dict[str, B]:
        """The configuration fields of ``slot``, by name."""
        return {name: getattr(slot, name) for name in CONFIG_FIELDS}

    # -- states of a shape
    def initial_shared(
        self, logic: Logic[B], shape: Shape, config: Mapping[str, B] | None = None
    ) -> Shared[B]:
        """Nothing mapped, tracked or logged; no lock held. The configuration
        (``config``, by field of CONFIG_FIELDS; a missing one false) is the one free
        choice."""
        f = logic.const(False)
        given = config or {}
        slot = Slot(**{name: given.get(name, f) for name in SLOT_FIELDS})
        return Shared(
            sptes=tuple(Spte(*(f for _ in SPTE_FIELDS)) for _ in range(shape.sptes)),
            slot=slot,
            frames=tuple(Frame(f, f) for _ in range(shape.gfns)),
            hosts=tuple(
                self.initial_actor(logic, shape, vcpu=False) for _ in range(shape.host_threads)
            ),
        )

    def initial_actor(self, logic: Logic[B], shape: Shape, vcpu: bool = True) -> Actor[B]:
        """An actor with nothing cached and every local false."""
        f = logic.const(False)
        tlbs = tuple(TlbEntry(f, f, f) for _ in range(shape.gfns)) if vcpu else ()
        return Actor(tlbs, tuple(f for _ in self.locals))

    def shared_names(self, shape: Shape) -> tuple[str, ...]:
        return shared_names(shape, self.locals)

    def vcpu_names(self, shape: Shape) -> tuple[str, ...]:
        return actor_names(shape, self.locals)


#: The operations, in canonical order (counterexamples are minimal in this order).
OPERATIONS: tuple[Operation, ...] = (
    guest.GUEST_ACCESS,
    guest.GUEST_WRITE,
    guest.TLB_EVICT,
    faults.PAGE_FAULT,
    faults.FAST_PAGE_FAULT,
    faults.PREFETCH,
    shadow.SYNC_SPTE,
    shadow.WRITE_PROTECT,
    notifier.AGING,
    notifier.AGING_STORE,
    notifier.ZAP,
    dirty_log.ENABLE_DIRTY_LOGGING,
    dirty_log.ENABLE_FLUSH,
    dirty_log.HARVEST,
    dirty_log.HARVEST_FLUSH,
    dirty_log.DISABLE_DIRTY_LOGGING,
    shadow.UNTRACK,
)

#: The operations of a shape with a 2M SPTE, in canonical order: the guest's (which
#: act on the SPTE that maps the gfn, at either size), those that know SPTE levels,
#: and the write-protect for tracking and the flushes after unlock, which act alike
#: at either size.
HUGE_OPERATIONS: tuple[Operation, ...] = (
    guest.GUEST_ACCESS,
    guest.GUEST_WRITE,
    guest.TLB_EVICT,
    huge.HUGE_PAGE_FAULT,
    huge.HUGE_FAST_PAGE_FAULT,
    shadow.WRITE_PROTECT,
    huge.ENABLE_INITIALLY_SET,
    dirty_log.ENABLE_FLUSH,
    huge.CLEAR_DIRTY_LOG,
    dirty_log.HARVEST_FLUSH,
)

#: every operation as declared, in every MMU and era: what names and orders them
MODEL = Model(OPERATIONS + tuple(op for op in HUGE_OPERATIONS if op not in OPERATIONS), PROPERTIES)


@cache
def model_for(paths: Paths, huge: bool = False) -> Model:
    """The model of one MMU in one era: the operations that MMU and era perform, each
    as they perform it (:meth:`Operation.in_era`), in canonical order; with
    ``huge``, those of a shape with a 2M SPTE (:data:`HUGE_OPERATIONS`), which hold
    the configuration without PML."""
    chosen = HUGE_OPERATIONS if huge else OPERATIONS
    present = (op.in_era(paths) for op in chosen)
    operations = tuple(op for op in present if op is not None)
    if huge:
        return Model(operations, PROPERTIES, pml=False, fixed=(("pml", False),))
    return Model(operations, PROPERTIES, pml=paths.pml)


@dataclass(frozen=True)
class System:
    """What is checked: a flush rule, the era and MMU around it (``paths``), the
    model's shape, and the model itself: ``model_for(paths, shape.huge)`` unless a test
    declares its own, with the ``configuration`` fields held at their values."""

    rule: FlushRule
    paths: Paths = field(default_factory=Paths)
    shape: Shape = field(default_factory=Shape)
    model: Model = None  # type: ignore[assignment]
    #: configuration fields held at one value, as (field, value) pairs
    configuration: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        if self.model is None:
            object.__setattr__(self, "model", model_for(self.paths, self.shape.huge))
            # an era's own model (a test's declared model is its own business)
            for op in self.model.operations:
                if op.one_gfn and self.shape.gfns > 1:
                    raise ValueError(
                        f"{op.name} ({op.title}) is modelled with one gfn only, and "
                        "this era and MMU have it: check them with one gfn"
                    )
        if self.configuration:
            model = dataclasses.replace(self.model, fixed=self.configuration)
            object.__setattr__(self, "model", model)


OPERATION_BY_NAME: dict[str, Operation] = {op.name: op for op in MODEL.operations}
