"""Explicit-state exploration: breadth-first over the reachable states, without z3.

It uses the same pure-Python step function that replays counterexamples, so it
shares no solver code with the SMT engines and can check them.

Symmetry
--------
vCPUs are interchangeable: no operation reads another vCPU's record and every
property is symmetric. A state is therefore stored in canonical form, its vCPU
records (TLB entries and locals) sorted (``canonical``), one state per orbit of
vCPU permutations. Within a canonical state, vCPUs with equal records are
interchangeable too, so a vCPU operation is tried on one representative vCPU per
distinct record. (The model has one host thread; with several, their records
would be sorted the same way.) The number of
concrete states is recovered exactly as the sum of orbit sizes,
``N! / prod(count(entry)!)``, because the reachable set is closed under
permutation.

Traces
------
Each canonical state records its BFS parent, the action taken there and the
permutation that canonicalised the successor. A concrete trace is rebuilt by
replaying those actions from the initial state while tracking which concrete
vCPU each canonical position stands for. BFS gives shortest traces; actions are
tried in canonical order, so the result is deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from checker import interrupt
from checker.engines import semantics
from checker.engines.semantics import Action, State, Step
from checker.errors import Inconclusive
from checker.model import (
    Actor,
    FlushRule,
    Kind,
    Model,
    Operation,
    Outcome,
    Property,
    Shape,
    Shared,
    Spte,
    System,
    apply,
)
from checker.model.logic import CONCRETE, Logic
from checker.model.operation import takes_lock
from checker.model.vocabulary import evolve

B = TypeVar("B")


def canonical(state: State) -> tuple[State, tuple[int, ...]]:
    """The orbit representative (vCPU records sorted) and the permutation ``perm``
    with ``representative.vcpus[i] == state.vcpus[perm[i]]``."""
    vcpus = state.vcpus
    perm = tuple(sorted(range(len(vcpus)), key=vcpus.__getitem__))
    return evolve(state, vcpus=tuple(vcpus[v] for v in perm)), perm


def orbit_size(state: State) -> int:
    """How many concrete states the canonical ``state`` stands for."""
    counts = Counter(state.vcpus)
    return math.factorial(len(state.vcpus)) // math.prod(math.factorial(c) for c in counts.values())


class _Decisions:
    """A rule's answers with Python bools, each worked out once: a rule is a
    function of (old SPTE, new SPTE, A/D enabled), and a few hundred such triples
    recur across an exploration's thousands of outcomes."""

    def __init__(self, rule: FlushRule) -> None:
        self.rule = rule
        self._answers: dict[tuple[Any, Any, Any], Any] = {}

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
        # the Stepper's only: its logic is CONCRETE, so the SPTEs are Python bools
        key = (old, new, ad_enabled)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = self.rule.decide(logic, old, new, ad_enabled)
        return found


#: what an operation's outcome depends on: (operation, shared state, the actor's
#: record, gfn, parameters)
_Seen = tuple[str, Shared[bool], Actor[bool], int | None, tuple[tuple[str, bool], ...]]


class Stepper:
    """The step function with each operation's outcome memoised, and whether a step
    violates a step property.

    An operation's outcome depends only on the shared state, the acting actor's
    record, the gfn and the parameters; with many vCPUs the same few combinations
    recur in every state. A step property reads only what the step saw (that same
    window) and its outcome, so its answer is memoised the same way.
    """

    def __init__(self, system: System) -> None:
        self.system = system
        self.model = system.model
        self.rule = _Decisions(system.rule)
        self._outcomes: dict[_Seen, Outcome[bool]] = {}
        self._bad: dict[tuple[str, _Seen], bool] = {}
        self._free: dict[tuple[Any, ...], bool] = {}

    @staticmethod
    def _seen(op: Operation, state: State, action: Action) -> _Seen:
        return (action.op, state.shared, state.actor(op, action), action.gfn, action.params)

    def violates(self, prop: Property, s: Step) -> bool:
        """``semantics.step_is_bad(prop, s)``, for a step of this stepper's system."""
        key = (prop.name, self._seen(self.model.by_name(s.action.op), s.before, s.action))
        found = self._bad.get(key)
        if found is None:
            found = self._bad[key] = semantics.step_is_bad(prop, s)
        return found

    def _available(self, op: Operation, state: State) -> bool:
        """``semantics.available(model, op, state)``: whether the records' holds of
        ``mmu_lock`` let ``op`` take it, which depends on the lock it takes."""
        if not takes_lock(op) or not self.model.locals:
            return True
        key = (op.lock, state.vcpus, state.shared.hosts)
        found = self._free.get(key)
        if found is None:
            found = self._free[key] = semantics.available(self.model, op, state)
        return found

    def outcome(self, op: Operation, state: State, action: Action) -> Outcome[bool]:
        key = self._seen(op, state, action)
        found = self._outcomes.get(key)
        if found is None:
            window = state.window(action)
            found = apply(CONCRETE, self.rule, self.system.paths, op, window, dict(action.params))
            self._outcomes[key] = found
        return found

    def step(self, state: State, action: Action) -> Step | None:
        op = self.model.by_name(action.op)
        out = self.outcome(op, state, action)
        if not out.enabled or not self._available(op, state):
            return None
        return Step(action, state, semantics.after(op, state, action, out), out)

    def successors(self, state: State, symmetric: bool) -> Iterator[Step]:
        """Every enabled step; with ``symmetric``, one vCPU per distinct record."""
        seen: set[Actor[bool]] = set()
        representatives = []
        for v, record in enumerate(state.vcpus):
            if not symmetric or record not in seen:
                seen.add(record)
                representatives.append(v)
        for action in _actions(self.model, len(state.vcpus), state.shape, tuple(representatives)):
            s = self.step(state, action)
            if s is not None:
                yield s


_ACTION_CACHE: dict[tuple[Model, int, Shape, tuple[int, ...]], tuple[Action, ...]] = {}


def _actions(
    model: Model, vcpus: int, shape: Shape, representatives: tuple[int, ...]
) -> tuple[Action, ...]:
    key = (model, vcpus, shape, representatives)
    if key not in _ACTION_CACHE:
        _ACTION_CACHE[key] = tuple(
            a
            for a in semantics.actions(vcpus, shape, model)
            if a.vcpu is None or a.vcpu in representatives
        )
    return _ACTION_CACHE[key]


@dataclass
class Exploration:
    """The reachable states of ``system`` with ``vcpus`` vCPUs, explored breadth-first."""

    system: System
    vcpus: int
    symmetric: bool
    #: canonical state -> (parent, action taken in the parent, successor's permutation)
    parent: dict[State, tuple[State, Action, tuple[int, ...]] | None] = field(default_factory=dict)
    depth: dict[State, int] = field(default_factory=dict)
    #: number of steps explored (transitions out of canonical states)
    steps: int = 0

    @property
    def reduced_states(self) -> int:
        return len(self.parent)

    @property
    def raw_states(self) -> int:
        """Concrete states: the sum of orbit sizes (exact, the reachable set is symmetric)."""
        if not self.symmetric:
            return len(self.parent)
        return sum(orbit_size(s) for s in self.parent)

    def trace_to(self, target: State) -> tuple[State, list[Action], list[int]]:
        """A concrete initial state and actions leading to a permutation of ``target``,
        and that permutation: ``target.vcpus[i]`` is the concrete state's
        ``vcpus[where[i]]``."""
        chain: list[tuple[Action, tuple[int, ...]]] = []
        node = target
        while (link := self.parent[node]) is not None:
            parent, action, perm = link
            chain.append((action, perm))
            node = parent
        chain.reverse()
        initial = node
        stepper = Stepper(self.system)
        concrete = initial
        where = list(range(self.vcpus))  # canonical position -> concrete vCPU
        actions = []
        for action, perm in chain:
            real = dataclasses.replace(
                action, vcpu=None if action.vcpu is None else where[action.vcpu]
            )
            step = stepper.step(concrete, real)
            assert step is not None, f"rebuilding the trace: {real.label} not enabled"
            concrete = step.after
            actions.append(real)
            where = [where[perm[i]] for i in range(self.vcpus)] if self.symmetric else where
        return initial, actions, where


#: the exploration's budget, in states × vCPUs: a stored state of N vCPUs costs N,
#: as its memory (its TLBs, its N-fold steps) and the time spent on it grow with N.
#: The default engines' uses fit (8 vCPUs: 3,345 states up to symmetry, 26,760; the
#: concrete graph of 5 vCPUs: at most 22,240 states, 111,200) and a hopeless one
#: (256 vCPUs: 1,562 states) stops within seconds instead of running out of memory
DEFAULT_MAX_STATES = 400_000


class StateBudgetExceeded(Inconclusive):
    """The reachable states, times their vCPUs, outnumber the exploration's budget."""

    def __init__(self, max_states: int, vcpus: int, symmetric: bool, stored: int) -> None:
        counted = ", counted up to symmetry" if symmetric else ""
        super().__init__(
            f"explicit exploration: more than {max_states:,} states times vCPUs ({stored:,} "
            f"reachable states at {vcpus} vCPUs{counted}); raise --max-states "
            f"(e.g. --max-states {max_states * 10}) or use fewer vCPUs"
        )


def explore(
    system: System,
    vcpus: int,
    symmetric: bool = True,
    visit: Callable[[Exploration, State, Step], bool] | None = None,
    on_reached: Callable[[State], None] | None = None,
    max_states: int | None = DEFAULT_MAX_STATES,
    on_step: Callable[[State, Step, State], None] | None = None,
    stepper: Stepper | None = None,
) -> tuple[Exploration, Step | None]:
    """Breadth-first exploration. ``visit(exploration, parent, step)`` is called for every
    step out of a canonical state; returning True stops there (the step is the
    answer). ``on_step(parent, step, successor)`` is called next, with the
    successor in canonical form. ``on_reached(state)`` is called for every state
    when first reached. ``stepper`` (of ``system``) steps, if given: one that
    shares what it worked out with other explorations.
    Storing states whose number times ``vcpus`` exceeds ``max_states`` (None: no
    bound) raises :class:`StateBudgetExceeded`."""
    ex = Exploration(system, vcpus, symmetric)
    stepper = stepper or Stepper(system)
    queue: deque[State] = deque()
    # each distinct shared state and vCPU record is stored once, and every state
    # refers to that one: the stepper's memo then finds its keys by identity
    # instead of comparing equal records field by field
    records: dict[Any, Any] = {}

    def interned(state: State) -> State:
        shared = records.setdefault(state.shared, state.shared)
        vcpus = tuple(records.setdefault(v, v) for v in state.vcpus)
        return semantics.State(shared, vcpus, state.shape, state.model)

    def store() -> None:
        if max_states is not None and (len(ex.parent) + 1) * vcpus > max_states:
            raise StateBudgetExceeded(max_states, vcpus, symmetric, len(ex.parent))

    for start in semantics.initial_states(vcpus, system.shape, system.model):
        store()
        ex.parent[start] = None
        ex.depth[start] = 0
        if on_reached is not None:
            on_reached(start)
        queue.append(start)
    while queue:
        interrupt.check()
        state = queue.popleft()
        for step in stepper.successors(state, symmetric):
            ex.steps += 1
            if visit is not None and visit(ex, state, step):
                return ex, step
            after, perm = canonical(step.after) if symmetric else (step.after, tuple(range(vcpus)))
            if on_step is not None:
                on_step(state, step, after)
            if after in ex.parent:
                continue
            store()
            after = interned(after)
            ex.parent[after] = (state, step.action, perm)
            ex.depth[after] = ex.depth[state] + 1
            if on_reached is not None:
                on_reached(after)
            queue.append(after)
    return ex, None


# --- checking properties -------------------------------------------------------------------


@dataclass(frozen=True)
class ExplicitResult:
    violated: bool
    exploration: Exploration
    #: the shortest violating trace: a concrete initial state and its actions
    initial: State | None = None
    actions: tuple[Action, ...] = ()


def check_all(
    system: System,
    props: Sequence[Property],
    vcpus: int,
    symmetric: bool = True,
    max_states: int | None = DEFAULT_MAX_STATES,
) -> dict[str, ExplicitResult]:
    """Explore once and find, for each property, its shortest violation if any.

    States are reached in breadth-first order and steps are taken from states in
    that order, so the first bad state (for a state property) or bad step (for a
    step property) found is a shortest violation.
    """
    first_state: dict[str, State] = {}
    first_step: dict[str, Step] = {}

    def reached(state: State) -> None:
        for p in props:
            if (
                p.kind is Kind.STATE
                and p.name not in first_state
                and semantics.state_is_bad(p, state)
            ):
                first_state[p.name] = state

    stepper = Stepper(system)
    step_props = [p for p in props if p.kind is Kind.STEP]

    def visit(ex: Exploration, parent: State, step: Step) -> bool:
        for p in step_props:
            if p.name not in first_step and stepper.violates(p, step):
                first_step[p.name] = step
        return False

    ex, _ = explore(
        system,
        vcpus,
        symmetric,
        visit=visit,
        on_reached=reached,
        max_states=max_states,
        stepper=stepper,
    )
    results = {}
    for p in props:
        if p.name in first_state:
            initial, actions, _ = ex.trace_to(first_state[p.name])
            results[p.name] = ExplicitResult(True, ex, initial, tuple(actions))
        elif p.name in first_step:
            bad = first_step[p.name]
            initial, actions, where = ex.trace_to(bad.before)
            last = bad.action
            if last.vcpu is not None:
                last = dataclasses.replace(last, vcpu=where[last.vcpu])
            results[p.name] = ExplicitResult(True, ex, initial, (*actions, last))
        else:
            results[p.name] = ExplicitResult(False, ex)
    return results


def check(system: System, prop: Property, vcpus: int, symmetric: bool = True) -> ExplicitResult:
    """Search every reachable state and step for a violation of ``prop``."""
    return check_all(system, [prop], vcpus, symmetric)[prop.name]
