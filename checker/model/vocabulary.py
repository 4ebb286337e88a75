"""The state vocabulary, declared once: every engine's state layout comes from here.

A state of the model is

* the **shared** part (:class:`Shared`): one record per leaf SPTE (:class:`Spte`),
  the memslot's scalars (:class:`Slot`), one per guest frame (:class:`Frame`), and one
  per host thread (:class:`Actor`);
* one :class:`Actor` record per vCPU: its TLB entry for each gfn
  (:class:`TlbEntry`) and its local state.

An actor's local state is what an operation that spans several steps remembers
between them (the SPTE value it read before its ``cmpxchg``, the ``mmu_lock`` it
holds). Which locals exist is declared by the operations (:class:`Local`); the
model (:mod:`checker.model.declaration`) collects them, so a model whose operations
all complete in one step has none.

How many SPTEs, gfns and host threads there are is the configuration
(:class:`Shape`); the number of vCPUs is the engines' parameter (an uninterpreted
sort for the parametric proof).

Every record is generic in ``B``, the Boolean type of the interpretation (``bool``
for the step function, z3 terms for the relations). The functions at the end
(:func:`leaves`, :func:`rebuild`, :func:`leaf_names`, :func:`select`) walk any record
the same way, so the order of a state's variables, their names, equality and
decoding are written once.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from checker.model.logic import Logic

B = TypeVar("B")
C = TypeVar("C")


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
class Slot(Generic[B]):
    """The memslot, and the VM-wide configuration the model reads."""

    #: the MMU has hardware Accessed/Dirty bits (a configuration bit, fixed in the
    #: initial state)
    ad_enabled: B
    #: dirty logging is by Dirty bits (PML) instead of write-protection (a
    #: configuration bit, fixed in the initial state; needs A/D bits)
    pml: B
    dirty_logging: B
    #: a dirty-log harvest reaped a gfn and has not flushed yet (it flushes after
    #: dropping mmu_lock)
    harvest_flush_pending: B
    #: enabling dirty logging has not flushed yet
    enable_flush_pending: B


@dataclass(frozen=True, order=True)
class Frame(Generic[B]):
    """One guest frame (gfn): its write-tracking and its bit in the dirty bitmap."""

    write_tracked: B
    dirty_bit: B


@dataclass(frozen=True, order=True)
class TlbEntry(Generic[B]):
    """One vCPU's TLB entry for one gfn: none (not cached), read-only, writable, or
    writable with the dirty state cached (filled from, or used for a write to, an
    SPTE with Dirty set: a write through it does not touch the SPTE)."""

    cached: B
    writable: B
    dirty: B


@dataclass(frozen=True, order=True)
class Actor(Generic[B]):
    """A vCPU or a host thread: its TLB entries (one per gfn; none for a host
    thread) and its local state, in the model's declared order of locals."""

    tlbs: tuple[TlbEntry[B], ...]
    local: tuple[B, ...]

    def __hash__(self) -> int:
        return cached_hash(self)

    def __getstate__(self) -> dict[str, Any]:
        return without_kept_hash(self)


@dataclass(frozen=True, order=True)
class Shared(Generic[B]):
    """Everything that is not one vCPU's."""

    sptes: tuple[Spte[B], ...]
    slot: Slot[B]
    frames: tuple[Frame[B], ...]
    hosts: tuple[Actor[B], ...]

    def __hash__(self) -> int:
        return cached_hash(self)

    def __getstate__(self) -> dict[str, Any]:
        return without_kept_hash(self)


SPTE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Spte))
SLOT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Slot))
FRAME_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Frame))
#: the slot fields that are the VM's configuration: free in the initial state (under
#: the model's constraint, :meth:`checker.model.declaration.Model.admits`), never
#: changed by a step
CONFIG_FIELDS: tuple[str, ...] = ("ad_enabled", "pml")
TLB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TlbEntry))


class Tlb(enum.IntEnum):
    """A concrete TLB entry, as shown to users."""

    NONE = 0
    READ_ONLY = 1
    WRITABLE = 2
    #: writable, with the dirty state cached
    DIRTY = 3

    @property
    def label(self) -> str:
        return ("none", "ro", "rw", "rwd")[self]

    def entry(self) -> TlbEntry[bool]:
        return _ENTRIES[self]

    @staticmethod
    def of(entry: TlbEntry[bool]) -> Tlb:
        if entry.writable and not entry.cached:
            raise ValueError("TLB entry writable but not cached")
        if entry.dirty and not entry.writable:
            raise ValueError("TLB entry dirty but not writable")
        if not entry.cached:
            return Tlb.NONE
        if entry.dirty:
            return Tlb.DIRTY
        return Tlb.WRITABLE if entry.writable else Tlb.READ_ONLY


_ENTRIES = {
    Tlb.NONE: TlbEntry(False, False, False),
    Tlb.READ_ONLY: TlbEntry(True, False, False),
    Tlb.WRITABLE: TlbEntry(True, True, False),
    Tlb.DIRTY: TlbEntry(True, True, True),
}


@dataclass(frozen=True)
class Local:
    """A local variable of an actor, declared by the operations that use it."""

    name: str
    doc: str


@dataclass(frozen=True)
class Shape:
    """How many guest frames and leaf SPTEs the model holds, and which SPTE maps
    each gfn (``spte_of[g]``; by default one 4K SPTE per gfn).

    With ``huge``, one more SPTE (the last, :attr:`huge_spte`) is a 2M leaf over
    every gfn of the shape, beside each gfn's own 4K SPTE: while the 2M SPTE is
    present it is the one that maps every gfn (the 4K SPTEs are then not present:
    a 2M leaf has no page table below it), and a split replaces it with them."""

    gfns: int = 1
    spte_of: tuple[int, ...] | None = None
    host_threads: int = 1
    huge: bool = False

    def __post_init__(self) -> None:
        if self.gfns < 1 or self.host_threads < 1:
            raise ValueError("a model needs at least one gfn and one host thread")
        mapping = self.spte_of if self.spte_of is not None else tuple(range(self.gfns))
        if len(mapping) != self.gfns or sorted(set(mapping)) != list(range(max(mapping) + 1)):
            raise ValueError(f"spte_of {mapping} does not map {self.gfns} gfns onto SPTEs")
        if self.huge and mapping != tuple(range(self.gfns)):
            raise ValueError("a shape with a 2M SPTE gives each gfn its own 4K SPTE")
        object.__setattr__(self, "spte_of", mapping)

    @property
    def sptes(self) -> int:
        assert self.spte_of is not None
        return max(self.spte_of) + 1 + int(self.huge)

    def describe(self) -> str:
        """``2 gfns, each with its 4K SPTE, under one 2M SPTE``."""
        gfns = f"{self.gfns} gfn{'s' if self.gfns > 1 else ''}"
        if self.huge:
            return f"{gfns}, each with its 4K SPTE, under one 2M SPTE"
        return f"{gfns}, {self.sptes} SPTE{'s' if self.sptes > 1 else ''}"

    @property
    def huge_spte(self) -> int | None:
        """The 2M SPTE's number, if the shape has one."""
        return self.sptes - 1 if self.huge else None

    def spte(self, gfn: int) -> int:
        assert self.spte_of is not None
        return self.spte_of[gfn]


#: bit position of each SPTE field that has one, per layout (domain.md section 2).
#: Access tracking has no bit of its own in these layouts.
Layout = Literal["x86", "ept"]
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


# --- records, walked generically ---------------------------------------------------------


#: each type's field names, None for a type that is not a record (a leaf's: bool, a
#: z3 term)
_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _fields(record: Any) -> tuple[str, ...] | None:
    """The record's field names, if it is a record (a dataclass); cached per type,
    leaves' types too (most values walked are leaves), as the walk below runs for
    every state the engines build or compare."""
    kind = type(record)
    try:
        return _FIELDS[kind]
    except KeyError:
        pass
    names = (
        tuple(f.name for f in dataclasses.fields(record))
        if dataclasses.is_dataclass(record)
        else None
    )
    _FIELDS[kind] = names
    return names


R = TypeVar("R")

#: each record type's field names as a set, for :func:`evolve`'s check
_FIELD_SETS: dict[type, frozenset[str]] = {}


def evolve(record: R, **changes: Any) -> R:
    """``dataclasses.replace(record, **changes)`` for the model's frozen records.

    The same record, but built by copying the instance dictionary instead of
    calling ``__init__`` again field by field: the explicit engine replaces
    records about a million times in one era's exploration, and ``replace`` (its
    checks, then ``__init__``) was its largest single cost. So only for records
    without ``__post_init__`` or
    slots (the vocabulary, ``Window``, the step function's ``State``); a name
    that is not a field is refused as ``replace`` refuses it. A kept hash
    (:func:`cached_hash`) is not carried over: the new record has other fields.
    """
    kind = type(record)
    names = _FIELD_SETS.get(kind)
    if names is None:
        names = _FIELD_SETS[kind] = frozenset(f.name for f in dataclasses.fields(kind))  # type: ignore[arg-type]
    if not names.issuperset(changes):
        unknown = ", ".join(sorted(set(changes) - names))
        raise TypeError(f"{kind.__name__} has no field {unknown}")
    new = object.__new__(kind)
    fields = new.__dict__
    fields.update(record.__dict__)
    fields.pop(_HASH, None)
    fields.update(changes)
    return new


_HASH = "_hash"


def cached_hash(record: Any) -> int:
    """The hash of a frozen record's fields, computed once and kept on the record.

    A ``__hash__`` for the records the explicit engine uses as dictionary keys
    (``Shared``, ``Actor``, the step function's ``State``): dataclasses' own
    recomputes the hash through every nested record on every lookup. The value
    is the one dataclasses would give, ``hash`` of the compared fields' tuple,
    kept in the instance dictionary where equality, ordering and ``repr`` (which
    read the fields) do not see it.
    """
    fields = record.__dict__
    found = fields.get(_HASH)
    if found is None:
        kind = type(record)
        names = _COMPARED.get(kind)
        if names is None:
            names = _COMPARED[kind] = tuple(f.name for f in dataclasses.fields(kind) if f.compare)
        found = fields[_HASH] = hash(tuple(fields[n] for n in names))
    return found  # type: ignore[no-any-return]


def without_kept_hash(record: Any) -> dict[str, Any]:
    """A record's fields for pickling (``__getstate__``), without the hash kept by
    :func:`cached_hash`: an unpickled copy works its own out, in its own process."""
    return {k: v for k, v in record.__dict__.items() if k != _HASH}


#: each record type's compared fields (those its equality and hash read)
_COMPARED: dict[type, tuple[str, ...]] = {}


def leaves(record: Any) -> Iterator[Any]:
    """The record's Boolean leaves, depth first in declaration order."""
    out: list[Any] = []
    _collect(record, out)
    return iter(out)


def leaves_by_name(names: tuple[str, ...], record: Any) -> dict[str, Any]:
    """Each leaf of ``record`` by its name in ``names`` (its leaves' names, in
    order); where a name recurs, its first leaf, as a search along the leaves finds."""
    found: dict[str, Any] = {}
    for name, x in zip(names, leaves(record), strict=True):
        found.setdefault(name, x)
    return found


def _collect(record: Any, out: list[Any]) -> None:
    if isinstance(record, tuple):
        for item in record:
            _collect(item, out)
        return
    names = _fields(record)
    if names is None:
        out.append(record)
        return
    for name in names:
        _collect(getattr(record, name), out)


def rebuild(template: Any, values: Iterator[C]) -> Any:
    """A record shaped like ``template`` with its leaves taken from ``values``."""
    if isinstance(template, tuple):
        return tuple(rebuild(item, values) for item in template)
    names = _fields(template)
    if names is None:
        return next(values)
    return type(template)(*(rebuild(getattr(template, n), values) for n in names))


def map_leaves(fn: Callable[[Any], C], record: Any) -> Any:
    """The record with ``fn`` applied to every leaf."""
    return rebuild(record, (fn(x) for x in leaves(record)))


def select(logic: Logic[B], cond: B, then: C, other: C) -> C:
    """``then`` if ``cond`` else ``other``, leaf by leaf; with a Python ``bool``
    condition, the chosen record itself (the step function pays nothing)."""
    if cond is True:
        return then
    if cond is False:
        return other
    return rebuild(  # type: ignore[no-any-return]
        then,
        (logic.ite(cond, a, b) for a, b in zip(leaves(then), leaves(other), strict=True)),
    )


def equal(logic: Logic[B], x: Any, y: Any) -> B:
    """Two records agree on every leaf."""
    return logic.and_(*(logic.iff(a, b) for a, b in zip(leaves(x), leaves(y), strict=True)))


def _indexed(name: str, index: int, count: int) -> str:
    # one of a kind keeps its plain name: the default shape's names are the model's
    return name if count == 1 else f"{name}[{index}]"


def shared_names(shape: Shape, locals_: Sequence[Local]) -> tuple[str, ...]:
    """The name of each leaf of :class:`Shared`, in :func:`leaves` order: an SPTE's
    ``writable``, a frame's ``dirty_bit``, a host thread's ``host.<local>``; with
    several SPTEs or gfns, ``writable[1]``; the 2M SPTE's ``writable[2M]``."""
    names = []
    for i in range(shape.sptes):
        if i == shape.huge_spte:
            names += [f"{f}[2M]" for f in SPTE_FIELDS]
        else:
            names += [_indexed(f, i, shape.sptes) for f in SPTE_FIELDS]
    names += SLOT_FIELDS
    for g in range(shape.gfns):
        names += [_indexed(f, g, shape.gfns) for f in FRAME_FIELDS]
    for h in range(shape.host_threads):
        names += [_indexed(f"host.{x.name}", h, shape.host_threads) for x in locals_]
    return tuple(names)


def actor_names(shape: Shape, locals_: Sequence[Local], tlbs: bool = True) -> tuple[str, ...]:
    """The name of each leaf of a vCPU's :class:`Actor` record: ``tlb_cached``,
    ``tlb_writable`` (with several gfns ``tlb_writable[1]``), then its locals."""
    names = []
    if tlbs:
        for g in range(shape.gfns):
            names += [_indexed(f"tlb_{f}", g, shape.gfns) for f in TLB_FIELDS]
    return (*names, *(x.name for x in locals_))
