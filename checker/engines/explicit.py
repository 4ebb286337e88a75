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
from checker.limits import DEFAULT_MAX_STATES as DEFAULT_MAX_STATES
from checker.model import (
    Actor,
    FlushRule,
    Kind,
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
from checker.model.operation import shared_after, takes_lock, vcpu_after
from checker.model.vocabulary import evolve

B = TypeVar("B")
R = TypeVar("R")


def canonical(state: State) -> tuple[State, tuple[int, ...]]:
    """The orbit representative (vCPU records sorted) and the permutation ``perm``
    with ``representative.vcpus[i] == state.vcpus[perm[i]]``."""
    vcpus = state.vcpus
    perm = tuple(sorted(range(len(vcpus)), key=vcpus.__getitem__))
    if all(v == i for i, v in enumerate(perm)):
        return state, perm  # already in order (always, with one vCPU)
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


#: what a step's outcome depends on besides the window: the operation, the gfn and
#: the parameters (not which vCPU acts: the window holds the actor's record)
_Kind = tuple[str, int | None, tuple[tuple[str, bool], ...]]


class _Move:
    """One action kind's step in one window, worked out once: its outcome, the
    shared state after it (a host thread's record written back) and the actor's
    record after it before any flush, as ``semantics.after`` builds them."""

    __slots__ = ("actor", "bad", "outcome", "shared")

    def __init__(self, outcome: Outcome[bool], shared: Shared[bool], actor: Actor[bool]) -> None:
        self.outcome = outcome
        self.shared = shared
        self.actor = actor
        #: step property -> whether the step violates it, as asked
        self.bad: dict[str, bool] = {}


#: an action as the stepper takes it: the action, its operation, its kind, the
#: acting vCPU (None for a host thread) and whether other actors' holds of mmu_lock
#: can keep it from running
_Plan = tuple[Action, Operation, _Kind, int | None, bool]


class Stepper:
    """The step function with each step worked out once per window, and whether a
    step violates a step property.

    A step's outcome depends only on the shared state, the acting actor's record
    and the action's kind (operation, gfn, parameters); with many vCPUs the same
    few combinations recur in every state. So the outcome, the shared state after
    it and the actor's record after it are kept per (kind, shared state, actor's
    record), and a flushed record per record: a successor is then the kept shared
    state with the kept records put in place. A step property reads only what the
    step saw (that same window) and its outcome, so its answer is kept the same way.
    """

    def __init__(self, system: System) -> None:
        self.system = system
        self.model = system.model
        self.rule = _Decisions(system.rule)
        #: (kind, shared, actor's record) -> the move, or None where not enabled
        self._moves: dict[tuple[_Kind, Shared[bool], Actor[bool]], _Move | None] = {}
        self._flushed: dict[Actor[bool], Actor[bool]] = {}
        #: each distinct shared state and record the moves leave, kept once: equal
        #: successors then hold the same records, which compare by identity
        self._records: dict[Any, Any] = {}
        #: id(move.outcome) -> move: a step's outcome is its move's, kept alive by
        #: ``_moves``, so no other live outcome can have its id
        self._by_outcome: dict[int, _Move] = {}
        self._free: dict[tuple[Any, ...], bool] = {}
        self._plans: dict[tuple[int, Shape, tuple[int, ...] | None], tuple[_Plan, ...]] = {}
        self._plan_of: dict[Action, _Plan] = {}

    def _plan(self, action: Action) -> _Plan:
        found = self._plan_of.get(action)
        if found is None:
            op = self.model.by_name(action.op)
            vcpu = (action.vcpu or 0) if op.by_vcpu else None
            gated = takes_lock(op) and bool(self.model.locals)
            found = (action, op, (action.op, action.gfn, action.params), vcpu, gated)
            self._plan_of[action] = found
        return found

    def _plans_for(self, state: State, vcpus: tuple[int, ...] | None) -> tuple[_Plan, ...]:
        """The plans of every action of ``state``'s size, of the vCPUs ``vcpus``
        only (None: every vCPU), in canonical order."""
        key = (len(state.vcpus), state.shape, vcpus)
        found = self._plans.get(key)
        if found is None:
            found = self._plans[key] = tuple(
                self._plan(a)
                for a in semantics.actions(len(state.vcpus), state.shape, self.model)
                if vcpus is None or a.vcpu is None or a.vcpu in vcpus
            )
        return found

    def _move(self, plan: _Plan, state: State) -> _Move | None:
        action, op, kind, vcpu, _ = plan
        actor = state.shared.hosts[0] if vcpu is None else state.vcpus[vcpu]
        key = (kind, state.shared, actor)
        try:
            return self._moves[key]
        except KeyError:
            pass
        window = state.window(action)
        out = apply(CONCRETE, self.rule, self.system.paths, op, window, dict(action.params))
        move = None
        if out.enabled:
            shared = self.interned(shared_after(op, out, 0))
            move = _Move(out, shared, self.interned(out.window.actor))
            self._by_outcome[id(out)] = move
        self._moves[key] = move
        return move

    def violates(self, prop: Property, s: Step) -> bool:
        """``semantics.step_is_bad(prop, s)``: it reads the window the step saw and
        its outcome, so for a step this stepper took it is kept with the move."""
        move = self._by_outcome.get(id(s.outcome))
        if move is None:  # a step taken elsewhere
            return semantics.step_is_bad(prop, s)
        found = move.bad.get(prop.name)
        if found is None:
            found = move.bad[prop.name] = semantics.step_is_bad(prop, s)
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

    def interned(self, record: R) -> R:
        """The one kept record equal to ``record`` (a shared state or an actor's)."""
        return self._records.setdefault(record, record)  # type: ignore[no-any-return]

    def _after(self, move: _Move, state: State, vcpu: int | None) -> State:
        """``semantics.after``: the frame (``vcpu_after``) with the kept records."""
        vcpus = state.vcpus
        if move.outcome.flush:
            flushed = self._flushed
            records = []
            for v, record in enumerate(vcpus):
                if v == vcpu:
                    record = move.actor
                done = flushed.get(record)
                if done is None:
                    done = vcpu_after(CONCRETE, True, True, record, record)
                    done = flushed[record] = self.interned(done)
                records.append(done)
            vcpus = tuple(records)
        elif vcpu is not None and move.actor is not vcpus[vcpu] and move.actor != vcpus[vcpu]:
            vcpus = (*vcpus[:vcpu], move.actor, *vcpus[vcpu + 1 :])
        return State(move.shared, vcpus, state.shape, state.model)

    def step(self, state: State, action: Action) -> Step | None:
        plan = self._plan(action)
        return self._step(plan, state)

    def _step(self, plan: _Plan, state: State) -> Step | None:
        move = self._move(plan, state)
        if move is None or (plan[4] and not self._available(plan[1], state)):
            return None
        return Step(plan[0], state, self._after(move, state, plan[3]), move.outcome)

    def successors(self, state: State, symmetric: bool) -> Iterator[Step]:
        """Every enabled step; with ``symmetric``, one vCPU per distinct record."""
        vcpus: tuple[int, ...] | None = None
        if symmetric:
            seen: set[Actor[bool]] = set()
            representatives = []
            for v, record in enumerate(state.vcpus):
                if record not in seen:
                    seen.add(record)
                    representatives.append(v)
            vcpus = tuple(representatives)
        for plan in self._plans_for(state, vcpus):
            s = self._step(plan, state)
            if s is not None:
                yield s


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


class StateBudgetExceeded(Inconclusive):
    """The reachable states, times their vCPUs, outnumber the exploration's budget."""

    def __init__(
        self, max_states: int, vcpus: int, symmetric: bool, stored: int, exact: bool = False
    ) -> None:
        """``stored`` states were stored when the budget ran out; ``exact``: they are
        all the reachable states (counted beforehand, by an exploration up to vCPU
        symmetry that counts each state's orbit), so the budget they need is known."""
        if exact:
            needed = stored * vcpus
            super().__init__(
                f"explicit exploration: {stored:,} reachable states at {vcpus} vCPUs, "
                f"{needed:,} states times vCPUs, more than {max_states:,}; raise "
                f"--max-states (to at least {needed}) or use fewer vCPUs"
            )
            return
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

    # each distinct shared state and vCPU record is stored once (in the stepper's
    # table, which its moves use too), and every state refers to that one: the
    # stepper's memo then finds its keys by identity instead of comparing equal
    # records field by field
    def interned(state: State) -> State:
        vcpus = tuple(stepper.interned(v) for v in state.vcpus)
        return semantics.State(stepper.interned(state.shared), vcpus, state.shape, state.model)

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
    """One property's answer from one exploration."""

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
    stepper: Stepper | None = None,
) -> dict[str, ExplicitResult]:
    """Explore once and find, for each property, its shortest violation if any.

    States are reached in breadth-first order and steps are taken from states in
    that order, so the first bad state (for a state property) or bad step (for a
    step property) found is a shortest violation. ``stepper`` (of ``system``), if
    given, steps: one that keeps what it worked out for other explorations.
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

    stepper = stepper or Stepper(system)
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
