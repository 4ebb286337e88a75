"""The model interpreted with Python bools: initial states, actions, the step function.

No solver is involved. This is what replays every counterexample before it is
reported, and what the explicit-state engine explores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from checker.model import (
    OPERATION_BY_NAME,
    OPERATIONS,
    PARAMS,
    Gfn,
    Kind,
    Operation,
    Outcome,
    Property,
    System,
    Tlb,
    TlbEntry,
    apply,
    initial_gfn,
)
from checker.model.logic import CONCRETE

OPERATION_INDEX: dict[str, int] = {op.name: i for i, op in enumerate(OPERATIONS)}


@dataclass(frozen=True)
class Action:
    """One instance of an operation: which vCPU performs it, with which parameters.

    Actions order canonically by (operation index, vCPU, parameters), which is also
    the bit order of their SMT encoding; counterexamples are minimal in this order.
    """

    op: str
    vcpu: int | None = None
    params: tuple[tuple[str, bool], ...] = ()

    @property
    def operation(self) -> Operation:
        return OPERATION_BY_NAME[self.op]

    def sort_key(self) -> tuple[int, int, tuple[bool, ...]]:
        given = dict(self.params)
        return (
            OPERATION_INDEX[self.op],
            self.vcpu or 0,
            tuple(given.get(name, False) for name in PARAMS),
        )

    def __lt__(self, other: Action) -> bool:
        return self.sort_key() < other.sort_key()

    @property
    def label(self) -> str:
        """e.g. ``page_fault(host_writable)`` or ``sync_spte(!guest_writable)``."""
        args = [name if value else f"!{name}" for name, value in self.params]
        return f"{self.op}({', '.join(args)})" if args else self.op


@dataclass(frozen=True, order=True)
class State:
    gfn: Gfn[bool]
    tlbs: tuple[Tlb, ...]

    @property
    def vcpus(self) -> int:
        return len(self.tlbs)


@dataclass(frozen=True)
class Step:
    action: Action
    before: State
    after: State
    outcome: Outcome[bool]


def initial_states(vcpus: int) -> tuple[State, ...]:
    """The initial states, in canonical order (A/D bits disabled first)."""
    return tuple(
        State(initial_gfn(CONCRETE, ad_enabled), (Tlb.NONE,) * vcpus)
        for ad_enabled in (False, True)
    )


@cache
def actions(vcpus: int) -> tuple[Action, ...]:
    """Every action instance for ``vcpus`` vCPUs, in canonical order."""
    found: list[Action] = []
    for op in OPERATIONS:
        for vcpu in range(vcpus) if op.by_vcpu else (None,):
            for bits in range(1 << len(op.params)):
                # first parameter is the most significant, False before True
                values = [bool(bits >> (len(op.params) - 1 - i) & 1) for i in range(len(op.params))]
                found.append(Action(op.name, vcpu, tuple(zip(op.params, values, strict=True))))
    return tuple(sorted(found))


def step(system: System, state: State, action: Action) -> Step | None:
    """The successor of ``state`` under ``action``, or None if it is not enabled."""
    op = action.operation
    actor = action.vcpu if action.vcpu is not None else 0
    actor_tlb = state.tlbs[actor].entry() if state.tlbs else TlbEntry(False, False)
    outcome = apply(CONCRETE, system, op, state.gfn, actor_tlb, dict(action.params))
    if not outcome.enabled:
        return None
    if outcome.flush:
        tlbs = (Tlb.NONE,) * state.vcpus
    elif op.by_vcpu:
        tlbs = tuple(
            Tlb.of(outcome.actor_tlb) if v == actor else t for v, t in enumerate(state.tlbs)
        )
    else:
        tlbs = state.tlbs
    return Step(action, state, State(outcome.gfn, tlbs), outcome)


def successors(system: System, state: State) -> Iterator[Step]:
    for action in actions(state.vcpus):
        s = step(system, state, action)
        if s is not None:
            yield s


def state_is_bad(prop: Property, state: State) -> bool:
    """``state`` violates the state property ``prop`` (False for step properties)."""
    if prop.kind is not Kind.STATE or prop.bad_state is None:
        return False
    entries = [t.entry() for t in state.tlbs]
    return bool(prop.bad_state(CONCRETE, state.gfn, entries))


def step_is_bad(prop: Property, s: Step) -> bool:
    """``s`` violates the step property ``prop`` (False for state properties)."""
    if prop.kind is not Kind.STEP or prop.bad_step is None:
        return False
    return bool(prop.bad_step(CONCRETE, s.action.operation, s.before.gfn, s.outcome))


def with_tlbs(state: State, tlbs: tuple[Tlb, ...]) -> State:
    return dataclasses.replace(state, tlbs=tlbs)
