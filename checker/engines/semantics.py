"""The model interpreted with Python bools: initial states, actions, the step function.

No solver is involved. This is what replays every counterexample before it is
reported, and what the explicit-state engine explores. Everything here is the
declaration (``checker.model``) evaluated with :data:`CONCRETE`: the operation's
effect, the lock protocol and the frame are the model's own functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from checker.model import (
    MODEL,
    PARAMS,
    Actor,
    ActorKind,
    Kind,
    Model,
    Operation,
    Outcome,
    Property,
    Reach,
    Shape,
    Shared,
    System,
    Tlb,
    Window,
    apply,
)
from checker.model.logic import CONCRETE
from checker.model.operation import (
    HOLDS_READ,
    HOLDS_WRITE,
    blocks,
    shared_after,
    takes_lock,
    vcpu_after,
)
from checker.model.vocabulary import cached_hash, evolve, without_kept_hash


@dataclass(frozen=True)
class Action:
    """One instance of an operation: which vCPU performs it, on which gfn (None when
    the model has one gfn, or the operation reaches the whole slot), with which
    parameters.

    Actions order canonically by (operation index, vCPU, gfn, parameters), which is
    also the bit order of their SMT encoding; counterexamples are minimal in this
    order.
    """

    op: str
    vcpu: int | None = None
    params: tuple[tuple[str, bool], ...] = ()
    gfn: int | None = None

    @property
    def operation(self) -> Operation:
        """The shipped model's operation (trace files and views are of that model)."""
        return MODEL.by_name(self.op)

    def sort_key(self, model: Model = MODEL) -> tuple[int, int, int, tuple[bool, ...]]:
        given = dict(self.params)
        return (
            model.index(self.op),
            self.vcpu or 0,
            self.gfn or 0,
            tuple(given.get(name, False) for name in PARAMS),
        )

    def __lt__(self, other: Action) -> bool:
        return self.sort_key() < other.sort_key()

    @property
    def label(self) -> str:
        """e.g. ``page_fault(host_writable)``, ``sync_spte(!guest_writable)``, with
        several gfns ``guest_access@gfn1``."""
        args = [name if value else f"!{name}" for name, value in self.params]
        text = f"{self.op}({', '.join(args)})" if args else self.op
        return text if self.gfn is None else f"{text}@gfn{self.gfn}"


@dataclass(frozen=True, order=True)
class State:
    """The shared state and each vCPU's record; ``shape`` says how many SPTEs and
    gfns there are and which SPTE maps each gfn, ``model`` whose state it is (what
    its actors' locals are)."""

    shared: Shared[bool]
    vcpus: tuple[Actor[bool], ...]
    shape: Shape = dataclasses.field(default_factory=Shape, compare=False, repr=False)
    model: Model = dataclasses.field(default=MODEL, compare=False, repr=False)

    def __hash__(self) -> int:
        return cached_hash(self)

    def __getstate__(self) -> dict[str, Any]:
        return without_kept_hash(self)

    @property
    def vcpu_count(self) -> int:
        return len(self.vcpus)

    def tlb(self, vcpu: int, gfn: int = 0) -> Tlb:
        """vCPU ``vcpu``'s TLB entry for ``gfn``, as shown to users."""
        return Tlb.of(self.vcpus[vcpu].tlbs[gfn])

    def tlbs(self, gfn: int = 0) -> tuple[Tlb, ...]:
        """Every vCPU's entry for ``gfn``."""
        return tuple(Tlb.of(v.tlbs[gfn]) for v in self.vcpus)

    def actor(self, op: Operation, action: Action) -> Actor[bool]:
        """The record of the actor that takes ``action`` (of ``op``)."""
        if op.actor is ActorKind.VCPU:
            return self.vcpus[action.vcpu or 0]
        return self.shared.hosts[0]

    def window(self, action: Action) -> Window[bool]:
        """What ``action`` sees of this state."""
        model = self.model
        op = model.by_name(action.op)
        return model.window(
            CONCRETE, self.shape, self.shared, self.actor(op, action), action.gfn or 0
        )

    def locals(self, vcpu: int) -> dict[str, bool]:
        """vCPU ``vcpu``'s locals, by name."""
        values = self.vcpus[vcpu].local
        return {x.name: bool(v) for x, v in zip(self.model.locals, values, strict=True)}

    def lock_holders(self) -> list[tuple[str, str]]:
        """Who holds ``mmu_lock`` across steps: (actor, ``read`` or ``write``)."""
        found = []
        actors = [(f"vcpu{v}", r) for v, r in enumerate(self.vcpus)]
        actors += [
            ("host" if len(self.shared.hosts) == 1 else f"host{h}", r)
            for h, r in enumerate(self.shared.hosts)
        ]
        for name, record in actors:
            held = dict(zip((x.name for x in self.model.locals), record.local, strict=True))
            for mode, local in (("write", HOLDS_WRITE), ("read", HOLDS_READ)):
                if held.get(local.name):
                    found.append((name, mode))
        return found


@dataclass(frozen=True)
class Step:
    """One step of the step function: ``action`` taken from ``before`` leads to
    ``after``, with ``outcome`` (what the operation decided: the flush among it)."""

    action: Action
    before: State
    after: State
    outcome: Outcome[bool]

    @property
    def operation(self) -> Operation:
        """The operation taken, in the model whose step it is."""
        return self.before.model.by_name(self.action.op)


def initial_states(
    vcpus: int, shape: Shape | None = None, model: Model = MODEL
) -> tuple[State, ...]:
    """The initial states, one per configuration the model admits, in canonical
    order (A/D bits disabled first, PML after)."""
    shape = shape or Shape()
    if shape.host_threads != 1:
        # no action names a host thread yet: a second one would never act
        raise ValueError("the step function has one host thread")
    vcpu = model.initial_actor(CONCRETE, shape)
    return tuple(
        State(model.initial_shared(CONCRETE, shape, config), (vcpu,) * vcpus, shape, model)
        for config in model.configurations()
    )


@cache
def actions(vcpus: int, shape: Shape | None = None, model: Model = MODEL) -> tuple[Action, ...]:
    """Every action instance for ``vcpus`` vCPUs, in canonical order."""
    shape = shape or Shape()
    found: list[Action] = []
    for op in model.operations:
        targets: list[int | None] = (
            list(range(shape.gfns)) if op.reach is Reach.GFN and shape.gfns > 1 else [None]
        )
        for vcpu in range(vcpus) if op.by_vcpu else (None,):
            for gfn in targets:
                for bits in range(1 << len(op.params)):
                    # first parameter is the most significant, False before True
                    n = len(op.params)
                    values = [bool(bits >> (n - 1 - i) & 1) for i in range(n)]
                    params = tuple(zip(op.params, values, strict=True))
                    found.append(Action(op.name, vcpu, params, gfn))
    return tuple(sorted(found, key=lambda a: a.sort_key(model)))


def available(model: Model, op: Operation, state: State) -> bool:
    """No actor holds ``mmu_lock`` in a way that keeps ``op`` from taking it."""
    if not takes_lock(op) or not model.locals:
        return True
    holders = (*state.vcpus, *state.shared.hosts)
    return not any(blocks(CONCRETE, op.lock, r, model.locals) for r in holders)


def step(system: System, state: State, action: Action) -> Step | None:
    """The successor of ``state`` under ``action``, or None if it is not enabled."""
    model = system.model
    op = model.by_name(action.op)
    out = apply(CONCRETE, system.rule, system.paths, op, state.window(action), dict(action.params))
    if not out.enabled or not available(model, op, state):
        return None
    return Step(action, state, after(op, state, action, out), out)


def after(op: Operation, state: State, action: Action, out: Outcome[bool]) -> State:
    """The state after ``action`` (of ``op``) had ``out``: the model's frame, applied."""
    vcpu = action.vcpu if op.by_vcpu else None
    if out.flush or (vcpu is not None and out.window.actor != state.vcpus[vcpu]):
        vcpus = tuple(
            vcpu_after(CONCRETE, out.flush, v == vcpu, out.window.actor, record)
            for v, record in enumerate(state.vcpus)
        )
    else:
        vcpus = state.vcpus  # the frame keeps every record: nothing to rebuild
    return State(shared_after(op, out, 0), vcpus, state.shape, state.model)


def successors(system: System, state: State) -> Iterator[Step]:
    for action in actions(state.vcpu_count, state.shape, system.model):
        s = step(system, state, action)
        if s is not None:
            yield s


def state_is_bad(prop: Property, state: State) -> bool:
    """``state`` violates the state property ``prop`` (False for step properties)."""
    if prop.kind is not Kind.STATE or prop.bad_state is None:
        return False
    return bool(prop.bad_state(CONCRETE, state.shared, state.vcpus, state.shape))


def step_is_bad(prop: Property, s: Step) -> bool:
    """``s`` violates the step property ``prop`` (False for state properties)."""
    if prop.kind is not Kind.STEP or prop.bad_step is None:
        return False
    op = s.before.model.by_name(s.action.op)
    return bool(prop.bad_step(CONCRETE, op, s.before.window(s.action), s.outcome))


def with_vcpus(state: State, vcpus: tuple[Actor[bool], ...]) -> State:
    return evolve(state, vcpus=vcpus)
