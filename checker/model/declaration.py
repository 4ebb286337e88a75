"""The model as a value: its vocabulary, operations and properties, in one place.

:data:`MODEL` is what every engine interprets. Operations are listed in canonical
order (counterexamples are minimal in this order); the locals of the actors are
those the operations declare, plus the ``mmu_lock`` holds when some operation
keeps the lock across steps; a model whose operations all complete in one step has
none, and its state is exactly the vocabulary's shared records and TLB entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from checker.model.logic import Logic
from checker.model.operation import (
    HOLDS_READ,
    HOLDS_WRITE,
    Hold,
    Operation,
    Window,
)
from checker.model.operations import dirty_log, faults, guest, notifier, shadow
from checker.model.paths import FlushRule, Paths
from checker.model.properties import PROPERTIES, Property
from checker.model.vocabulary import (
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
)

B = TypeVar("B")

#: every parameter any operation takes, in canonical (encoding) order
PARAMS: tuple[str, ...] = ("host_writable", "write_fault", "guest_writable", "initially_set")


@dataclass(frozen=True)
class Model:
    """A transition system, declared: operations and properties over the vocabulary.

    ``locals`` are every actor's locals: those the operations declare, in order,
    then the ``mmu_lock`` holds if some operation keeps the lock across steps."""

    operations: tuple[Operation, ...]
    properties: tuple[Property, ...]
    locals: tuple[Local, ...] = field(init=False, compare=False)
    _index: dict[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [op.name for op in self.operations]
        if len(set(names)) != len(names):
            raise ValueError("two operations have the same name")
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

    def __hash__(self) -> int:
        return hash(self.operations)

    def index(self, name: str) -> int:
        """The operation's place in the canonical order."""
        return self._index[name]

    def by_name(self, name: str) -> Operation:
        return self.operations[self.index(name)]

    def window(self, shape: Shape, shared: Shared[B], actor: Actor[B], gfn: int) -> Window[B]:
        """What a step of an actor on ``gfn`` sees."""
        assert shape.spte_of is not None
        return Window(shared, actor, gfn, shape.spte_of, self.locals)

    # -- states of a shape
    def initial_shared(self, logic: Logic[B], shape: Shape, ad_enabled: B) -> Shared[B]:
        """Nothing mapped, tracked or logged; no lock held. A/D support is the one
        free choice."""
        f = logic.const(False)
        return Shared(
            sptes=tuple(Spte(*(f for _ in SPTE_FIELDS)) for _ in range(shape.sptes)),
            slot=Slot(ad_enabled, *(f for _ in SLOT_FIELDS[1:])),
            frames=tuple(Frame(f, f) for _ in range(shape.gfns)),
            hosts=tuple(
                self.initial_actor(logic, shape, vcpu=False) for _ in range(shape.host_threads)
            ),
        )

    def initial_actor(self, logic: Logic[B], shape: Shape, vcpu: bool = True) -> Actor[B]:
        """An actor with nothing cached and every local false."""
        f = logic.const(False)
        tlbs = tuple(TlbEntry(f, f) for _ in range(shape.gfns)) if vcpu else ()
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
    notifier.ZAP,
    dirty_log.ENABLE_DIRTY_LOGGING,
    dirty_log.ENABLE_FLUSH,
    dirty_log.HARVEST,
    dirty_log.HARVEST_FLUSH,
    dirty_log.DISABLE_DIRTY_LOGGING,
    shadow.UNTRACK,
)

#: every operation as declared, in every MMU and era: what names and orders them
MODEL = Model(OPERATIONS, PROPERTIES)


@cache
def model_for(paths: Paths) -> Model:
    """The model of one MMU in one era: the operations that MMU and era perform, each
    as they perform it (:meth:`Operation.in_era`), in canonical order."""
    present = (op.in_era(paths) for op in OPERATIONS)
    return Model(tuple(op for op in present if op is not None), PROPERTIES)


@dataclass(frozen=True)
class System:
    """What is checked: a flush rule, the era and MMU around it (``paths``), the
    model's shape, and the model itself: ``model_for(paths)`` unless a test
    declares its own."""

    rule: FlushRule
    paths: Paths = field(default_factory=Paths)
    shape: Shape = field(default_factory=Shape)
    model: Model = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.model is None:
            object.__setattr__(self, "model", model_for(self.paths))


OPERATION_BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}
