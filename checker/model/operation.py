"""How an operation is declared, and the one frame every interpretation applies.

An operation (:class:`Operation`) is one step an actor takes: a vCPU (the guest
through the hardware, or KVM on its behalf) or a host thread (an ioctl, an MMU
notifier). It declares its actor kind, its typed parameters, the ``mmu_lock`` mode
it runs under and how long it holds it, which gfns it reaches, which parts of the
state it writes, how it decides to flush, and its traits, which properties read
instead of its name.

Its ``effect`` sees a :class:`Window`, the part of the state one step can read:
the shared state, the actor's own record and the gfn the action targets. It
returns the window it leaves behind (:class:`Effect`). :func:`apply` adds the flush
rule, and the frame is then the same for every interpretation:

    shared'   = effect.window.shared      (a host thread's record written back)
    vcpu'[v]  = vcpu[v] with no TLB entry    if flush
              = effect.window.actor          if v is the actor
              = vcpu[v]                      otherwise

(:func:`shared_after`, :func:`vcpu_after`). No operation reads another vCPU's
record; actors interact only through the shared state and ``mmu_lock``, whose
availability is the one question asked of every actor (:func:`blocks`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from checker.model.logic import Logic
from checker.model.paths import FlushRule, Mmu, Paths
from checker.model.vocabulary import (
    SPTE_FIELDS,
    Actor,
    Frame,
    Local,
    Shared,
    Slot,
    Spte,
    TlbEntry,
    evolve,
    select,
)

B = TypeVar("B")


class ActorKind(enum.Enum):
    #: a vCPU: the guest through the hardware, or KVM handling its exit
    VCPU = "vcpu"
    #: a host thread: an ioctl, an MMU notifier, a worker
    HOST = "host"


class LockMode(enum.Enum):
    """The ``mmu_lock`` mode a step runs under."""

    #: lockless (the hardware, a fast page fault)
    NONE = "none"
    #: held for read, shared with other readers (the TDP MMU's faults and zaps)
    READ = "read"
    #: held for write, exclusive (the shadow MMU)
    WRITE = "write"


class Hold(enum.Enum):
    """How a step holds ``mmu_lock`` (its ``lock`` mode) across steps."""

    #: takes and drops it within the step: the whole section is one step
    ATOMIC = "atomic"
    #: takes it and keeps it: the section goes on in a later step
    ACQUIRE = "acquire"
    #: runs inside a section the actor already holds
    INSIDE = "inside"
    #: runs inside the actor's section, then drops the lock
    RELEASE = "release"


class Reach(enum.Enum):
    """Which gfns one step of an operation acts on."""

    #: one gfn, chosen by the action
    GFN = "gfn"
    #: every gfn of the memslot
    SLOT = "slot"


class Part(enum.Enum):
    """The parts of the state an operation may write."""

    SPTE = "spte"
    SLOT = "slot"
    FRAME = "frame"
    TLB = "tlb"
    LOCAL = "local"


class Flush(enum.Enum):
    """How an operation's caller uses the rule's answer, and so when it flushes the
    TLBs of every vCPU.

    The rule is asked about every present SPTE the step changes (``mmu_spte_update``
    in the shadow MMU; the leaf-change check under ``WARN_ON_ONCE`` in the TDP MMU).
    """

    #: never asks the rule; flushes only as its effect says
    NEVER = "never"
    #: acts on the answer: flushes before dropping ``mmu_lock`` iff the rule says so
    RULE = "rule"
    #: asks, and ignores the answer: its flush comes later, after dropping the lock
    #: (a separate step), on a condition of its own
    DEFERRED = "deferred"
    #: ORs the answer into a flush after dropping the lock: the slot field named
    #: by the operation's ``pending`` is set iff the rule said so on some SPTE
    LATER = "later"
    #: asserts the answer (``WARN_ON_ONCE``): the rule must never ask for a flush
    #: here (the ``assertion`` property), and KVM flushes if it does
    ASSERTED = "asserted"
    #: flushes on its effect's condition without asking the rule
    ALWAYS = "always"

    @property
    def asks_rule(self) -> bool:
        return self in (Flush.RULE, Flush.DEFERRED, Flush.LATER, Flush.ASSERTED)

    @property
    def acts_on_rule(self) -> bool:
        """The caller's flush depends on the answer (what precision counts)."""
        return self in (Flush.RULE, Flush.LATER)


class Trait(enum.Enum):
    """What properties need to know of an operation, instead of its name."""

    #: a guest store through a cached TLB entry: no VM exit, KVM never sees it
    GUEST_STORE = "guest_store"


@dataclass(frozen=True)
class Window(Generic[B]):
    """What one step sees: the shared state, the actor's record, and the gfn the
    action targets (``gfn``; 0 for a slot-wide step) with its SPTE."""

    shared: Shared[B]
    actor: Actor[B]
    gfn: int
    #: the SPTE that maps each gfn (the shape's)
    spte_of: tuple[int, ...]
    #: the model's locals, in the order of ``actor.local``
    locals: tuple[Local, ...] = ()
    #: the 2M SPTE over every gfn, if the shape has one, and the interpretation's
    #: logic, with which the SPTE that maps the gfn is chosen
    huge: int | None = None
    logic: Logic[B] | None = None

    @property
    def spte_index(self) -> int:
        """The gfn's own SPTE (its 4K SPTE where the shape has a 2M one)."""
        return self.spte_of[self.gfn]

    # -- reading
    @property
    def spte(self) -> Spte[B]:
        """The SPTE that maps the gfn: the 2M SPTE while it is present, else the
        gfn's own.  spte = P(2M) ? 2M : own"""
        own = self.shared.sptes[self.spte_index]
        if self.huge is None:
            return own
        assert self.logic is not None
        big = self.shared.sptes[self.huge]
        return select(self.logic, big.present, big, own)

    @property
    def slot(self) -> Slot[B]:
        return self.shared.slot

    @property
    def frame(self) -> Frame[B]:
        return self.shared.frames[self.gfn]

    @property
    def tlb(self) -> TlbEntry[B]:
        return self.actor.tlbs[self.gfn]

    def local(self, name: str) -> B:
        return self.actor.local[self._local_index(name)]

    # -- writing: each returns a new window
    def with_spte(self, **changes: B) -> Window[B]:
        """The SPTE that maps the gfn, changed (with a 2M SPTE: the 2M one while it
        is present, else the gfn's own)."""
        new = evolve(self.spte, **changes)
        if self.huge is None:
            return self.with_sptes({self.spte_index: new})
        assert self.logic is not None
        big, own = self.shared.sptes[self.huge], self.shared.sptes[self.spte_index]
        mapped = big.present
        return self.with_sptes(
            {
                self.huge: select(self.logic, mapped, new, big),
                self.spte_index: select(self.logic, mapped, own, new),
            }
        )

    def with_sptes(self, replaced: Mapping[int, Spte[B]]) -> Window[B]:
        sptes = tuple(replaced.get(i, s) for i, s in enumerate(self.shared.sptes))
        return evolve(self, shared=evolve(self.shared, sptes=sptes))

    def with_slot(self, **changes: B) -> Window[B]:
        slot = evolve(self.shared.slot, **changes)
        return evolve(self, shared=evolve(self.shared, slot=slot))

    def with_frame(self, **changes: B) -> Window[B]:
        return self.with_frames({self.gfn: evolve(self.frame, **changes)})

    def with_frames(self, replaced: Mapping[int, Frame[B]]) -> Window[B]:
        frames = tuple(replaced.get(i, f) for i, f in enumerate(self.shared.frames))
        return evolve(self, shared=evolve(self.shared, frames=frames))

    def with_every_frame(self, **changes: B) -> Window[B]:
        """Every gfn's frame changed alike (a slot-wide step)."""
        frames = self.shared.frames
        return self.with_frames({g: evolve(x, **changes) for g, x in enumerate(frames)})

    def with_tlb(self, entry: TlbEntry[B]) -> Window[B]:
        tlbs = tuple(entry if g == self.gfn else t for g, t in enumerate(self.actor.tlbs))
        return evolve(self, actor=evolve(self.actor, tlbs=tlbs))

    def with_local(self, **values: B) -> Window[B]:
        local = list(self.actor.local)
        for name, value in values.items():
            local[self._local_index(name)] = value
        return evolve(self, actor=evolve(self.actor, local=tuple(local)))

    def _local_index(self, name: str) -> int:
        for i, x in enumerate(self.locals):
            if x.name == name:
                return i
        raise KeyError(f"no local {name!r} is declared")


@dataclass(frozen=True)
class Effect(Generic[B]):
    """What a step does, before the flush rule: whether it is enabled, the window
    it leaves, and whether it flushes every TLB on its own account."""

    enabled: B
    window: Window[B]
    flush: B
    #: whether the step asks the rule (goes through ``mmu_spte_update``) at all, for
    #: a step that does on one branch only; None: whenever ``op.flush`` asks
    asks: B | None = None
    #: which SPTEs the rule is asked about, each under a condition, for a step that
    #: also changes SPTEs without asking (a fault that zaps or splits the huge SPTE
    #: in its way before it sets its leaf); None: every SPTE it changes
    asked_about: Mapping[int, B] | None = None


Params = Mapping[str, B]
EffectFn = Callable[[Logic[B], Window[B], Params[B], Paths], Effect[B]]


@dataclass(frozen=True)
class Operation:
    """One step of a KVM path or of the hardware, as the kernel performs it."""

    name: str
    title: str
    #: the kernel function that performs the step (for traces)
    function: str
    #: the call path leading to it
    path: str
    #: the kernel release or commit whose code the step follows
    source: str
    actor: ActorKind
    lock: LockMode
    reach: Reach
    flush: Flush
    #: the parts of the state the step may write
    writes: frozenset[Part]
    effect: EffectFn  # type: ignore[type-arg]
    #: Boolean parameters, chosen by the action
    params: tuple[str, ...] = ()
    hold: Hold = Hold.ATOMIC
    traits: frozenset[Trait] = frozenset()
    #: the actor's locals the step reads or writes
    locals: tuple[Local, ...] = ()
    #: the MMUs whose code performs the step
    mmus: frozenset[Mmu] = frozenset(Mmu)
    #: for ``Flush.LATER``: the slot field that records the flush owed after unlock
    pending: str | None = None
    #: the step is modelled for shapes with one gfn only (its locals remember what
    #: it read of an SPTE, not which gfn it was): a system with more is refused
    one_gfn: bool = False
    #: the step as an era performs it (its flush may differ by era), or None if the
    #: era has no such step; None here: the step is the same in every era
    configure: Callable[[Operation, Paths], Operation | None] | None = None

    @property
    def by_vcpu(self) -> bool:
        return self.actor is ActorKind.VCPU

    def __post_init__(self) -> None:
        if self.lock is LockMode.NONE and self.hold is not Hold.ATOMIC:
            raise ValueError(f"{self.name}: a lockless step cannot hold mmu_lock")
        if (self.flush is Flush.LATER) != (self.pending is not None):
            raise ValueError(f"{self.name}: a LATER flush, and only it, names its pending field")

    def in_era(self, paths: Paths) -> Operation | None:
        """The step as the era and MMU of ``paths`` perform it; None if they do not."""
        if paths.mmu not in self.mmus:
            return None
        return self if self.configure is None else self.configure(self, paths)


@dataclass(frozen=True)
class Outcome(Generic[B]):
    """A step's effect with the flush rule applied."""

    enabled: B
    window: Window[B]
    #: every vCPU's TLB entries are dropped
    flush: B
    #: the step changed some present SPTE and asked the rule about it
    rule_consulted: B
    #: the rule asked for a flush on some SPTE it was consulted on
    rule_flush: B
    #: ... on some SPTE whose MMU-writable the step did not clear (an IPI for nothing)
    rule_unneeded: B


def spte_changed(logic: Logic[B], old: Spte[B], new: Spte[B]) -> B:
    """``old != new`` field by field."""
    return logic.or_(
        *(logic.not_(logic.iff(getattr(old, f), getattr(new, f))) for f in SPTE_FIELDS)
    )


def apply(
    logic: Logic[B],
    rule: FlushRule,
    paths: Paths,
    op: Operation,
    before: Window[B],
    params: Params[B],
) -> Outcome[B]:
    """``op``'s outcome on ``before``, the actor's lock protocol and the flush rule
    included.

    The rule is consulted on each SPTE ``i`` the step changes while present, if
    ``op`` asks it (KVM skips identical rewrites, and a non-present old SPTE never
    needs a flush), and if the effect names SPTEs, on those only:

        consulted[i] = op.flush.asks_rule && effect.asks && P(old[i]) && old[i] != new[i]
                       && effect.asked_about[i]
        asked        = OR_i consulted[i] && rule(old[i], new[i])
        unneeded     = OR_i consulted[i] && rule(old[i], new[i]) && !(MW(old[i]) && !MW(new[i]))
        flush        = effect.flush || (op.flush in {RULE, ASSERTED} && asked)
        pending'     = pending || asked                 (op.flush is LATER)
    """
    effect = op.effect(logic, before, params, paths)
    ready, window = lock_step(logic, op, before, effect.window)
    f = logic.const(False)
    consulted, asked, unneeded = f, f, f
    if op.flush.asks_rule:
        ad = before.slot.ad_enabled
        parts_c, parts_a, parts_u = [], [], []
        for i, (old, new) in enumerate(zip(before.shared.sptes, window.shared.sptes, strict=True)):
            if old is new:
                continue
            if effect.asked_about is not None and i not in effect.asked_about:
                continue
            c = logic.and_(old.present, spte_changed(logic, old, new))
            if effect.asks is not None:
                c = logic.and_(c, effect.asks)
            if effect.asked_about is not None:
                c = logic.and_(c, effect.asked_about[i])
            a = logic.and_(c, rule.decide(logic, old, new, ad))
            clears_mw = logic.and_(old.mmu_writable, logic.not_(new.mmu_writable))
            parts_c.append(c)
            parts_a.append(a)
            parts_u.append(logic.and_(a, logic.not_(clears_mw)))
        consulted, asked, unneeded = (
            logic.or_(*parts_c),
            logic.or_(*parts_a),
            logic.or_(*parts_u),
        )
    flush = effect.flush
    if op.flush in (Flush.RULE, Flush.ASSERTED):
        flush = logic.or_(flush, asked)
    if op.flush is Flush.LATER:
        assert op.pending is not None
        owed = logic.or_(getattr(window.slot, op.pending), asked)
        window = window.with_slot(**{op.pending: owed})
    return Outcome(
        enabled=effect.enabled if ready is None else logic.and_(effect.enabled, ready),
        window=window,
        flush=flush,
        rule_consulted=consulted,
        rule_flush=asked,
        rule_unneeded=unneeded,
    )


# --- the frame: written once, for every interpretation -----------------------------------


def shared_after(op: Operation, out: Outcome[B], host: int) -> Shared[B]:
    """The shared state after the step: the window's, with a host thread's own
    record (``host``) written back into it."""
    shared = out.window.shared
    if op.actor is ActorKind.HOST:
        hosts = tuple(out.window.actor if h == host else a for h, a in enumerate(shared.hosts))
        shared = evolve(shared, hosts=hosts)
    return shared


def vcpu_after(logic: Logic[B], flush: B, is_actor: B, actor: Actor[B], old: Actor[B]) -> Actor[B]:
    """A vCPU's record after the step: the actor's new record if it is the actor,
    and with every TLB entry dropped if the step flushed."""
    kept: Actor[B] = select(logic, is_actor, actor, old)
    if flush is False:
        return kept
    f = logic.const(False)
    flushed = tuple(TlbEntry(f, f, f) for _ in kept.tlbs)
    return evolve(kept, tlbs=select(logic, flush, flushed, kept.tlbs))


#: the locals that record who holds ``mmu_lock`` across steps, when an operation does
HOLDS_READ = Local("holds_mmu_lock_read", "holds mmu_lock for read, across steps")
HOLDS_WRITE = Local("holds_mmu_lock_write", "holds mmu_lock for write, across steps")


def blocks(logic: Logic[B], mode: LockMode, record: Actor[B], locals_: tuple[Local, ...]) -> B:
    """The actor ``record`` holds ``mmu_lock`` in a way that keeps a step of
    ``mode`` from taking it (a writer excludes everyone; readers exclude writers)."""
    if mode is LockMode.NONE:
        return logic.const(False)
    held = {x.name: v for x, v in zip(locals_, record.local, strict=True)}
    write = held.get(HOLDS_WRITE.name, logic.const(False))
    read = held.get(HOLDS_READ.name, logic.const(False))
    return write if mode is LockMode.READ else logic.or_(write, read)


def lock_step(
    logic: Logic[B], op: Operation, before: Window[B], after: Window[B]
) -> tuple[B | None, Window[B]]:
    """The actor's own part of the lock protocol: whether ``op`` may run given what
    the actor holds (None: no condition, the model tracks no lock across steps),
    and the window with its hold updated.

    ``ATOMIC`` and ``ACQUIRE`` need the actor to hold nothing; ``INSIDE`` and
    ``RELEASE`` need it to hold ``op.lock``. (Whether *other* actors let it take the
    lock is :func:`blocks`, asked by each interpretation of every other actor.)"""
    if op.lock is LockMode.NONE or not _tracks_lock(before.locals):
        return None, after
    flag = HOLDS_WRITE.name if op.lock is LockMode.WRITE else HOLDS_READ.name
    mine = before.local(flag)
    other = before.local(HOLDS_READ.name if flag == HOLDS_WRITE.name else HOLDS_WRITE.name)
    if op.hold in (Hold.ATOMIC, Hold.ACQUIRE):
        ready = logic.and_(logic.not_(mine), logic.not_(other))
    else:
        ready = mine
    if op.hold is Hold.ACQUIRE:
        after = after.with_local(**{flag: logic.const(True)})
    elif op.hold is Hold.RELEASE:
        after = after.with_local(**{flag: logic.const(False)})
    return ready, after


def _tracks_lock(locals_: tuple[Local, ...]) -> bool:
    return any(x.name in (HOLDS_READ.name, HOLDS_WRITE.name) for x in locals_)


def takes_lock(op: Operation) -> bool:
    """The step takes ``mmu_lock`` (and so must find it available)."""
    return op.lock is not LockMode.NONE and op.hold in (Hold.ATOMIC, Hold.ACQUIRE)
