"""One era's reachable-state graph, explored under many flush rules.

Rule synthesis explores the same model and paths under dozens of rules (the base
rule, and the base rule without each update class). A step's successor depends on
the rule only through the rule's answers on the update classes the step asks it
about (``apply`` reads nothing else of the rule), so a :class:`RuleGraph` computes
each step of each canonical state once per distinct tuple of answers and keeps it:
an exploration under another rule reuses every step whose answers it shares, and
computes (and keeps) only the others.

Each exploration is the explicit engine's breadth-first search, step for step in
the same order (canonical states, one vCPU per distinct record, actions in
canonical order), so it finds the same shortest violations. States and classes
are numbered, so the search itself hashes integers.

Nothing is assumed about how rules relate (that fewer flushes allow more
behaviours, say): a step is reused only where the rule under exploration gives the
very answers it was computed with.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from checker import interrupt
from checker.engines import semantics
from checker.engines.diff import UpdateClass
from checker.engines.explicit import DEFAULT_MAX_STATES, StateBudgetExceeded, canonical, orbit_size
from checker.engines.semantics import Action, State
from checker.model import (
    FlushRule,
    Kind,
    Operation,
    Outcome,
    Paths,
    Property,
    Spte,
    System,
    apply,
)
from checker.model.logic import CONCRETE, Logic

B = TypeVar("B")


@dataclass(frozen=True, slots=True)
class Edge:
    """A step out of a canonical state: its successor's number, the permutation
    that made the successor canonical (as in ``explicit.Exploration.parent``), the
    step properties it violates and the classes it consults the rule on (those of
    the present SPTEs it changes)."""

    after: int
    perm: tuple[int, ...]
    bad: frozenset[str]
    consulted: tuple[int, ...]


@dataclass(slots=True)
class Move:
    """One action out of one canonical state: the classes (numbers) the rule is
    asked about, in the order asked, and the step for each tuple of answers
    computed so far (None: not enabled)."""

    action: Action
    op: Operation
    asked: tuple[int, ...]
    steps: dict[tuple[bool, ...], Edge | None]


@dataclass(frozen=True)
class _Recorder:
    """``rule``, noting every class it is asked about and its answer."""

    rule: FlushRule
    asked: list[UpdateClass]
    answers: list[bool]

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
        answer = bool(self.rule.decide(logic, old, new, ad_enabled))
        self.asked.append(UpdateClass(old, new, ad_enabled))  # type: ignore[arg-type]
        self.answers.append(answer)
        return logic.const(answer)


@dataclass
class Search:
    """One breadth-first exploration of a :class:`RuleGraph` under one rule: the
    states it reached, each with its parent, and the step that stopped it."""

    graph: RuleGraph
    #: state number -> (parent number, action in the parent, successor's permutation)
    parent: dict[int, tuple[int, Action, tuple[int, ...]] | None] = field(default_factory=dict)
    #: the step that stopped the search: (state number, move, edge, property name)
    stop: tuple[int, Move, Edge, str] | None = None

    @property
    def raw_states(self) -> int:
        """Concrete states reached: the sum of the orbit sizes."""
        return sum(self.graph.orbit(s) for s in self.parent)

    def trace_to(self, target: int) -> tuple[State, list[Action], list[int]]:
        """As ``explicit.Exploration.trace_to``: a concrete initial state, the
        concrete actions to a permutation of state ``target``, and that permutation."""
        chain: list[tuple[Action, tuple[int, ...]]] = []
        node = target
        while (link := self.parent[node]) is not None:
            node, action, perm = link
            chain.append((action, perm))
        chain.reverse()
        vcpus = self.graph.vcpus
        where = list(range(vcpus))
        actions = []
        for action, perm in chain:
            vcpu = None if action.vcpu is None else where[action.vcpu]
            actions.append(dataclasses.replace(action, vcpu=vcpu))
            where = [where[perm[i]] for i in range(vcpus)]
        return self.graph.states[node], actions, where


_MISSING: Any = object()


class RuleGraph:
    """The canonical states of ``paths``' model with ``vcpus`` vCPUs and their
    steps, computed as explorations under rules reach them and kept for the next.
    Each step is judged against the step properties of ``props``, each state
    against its state properties."""

    def __init__(self, paths: Paths, vcpus: int, props: Sequence[Property] = ()) -> None:
        self.paths = paths
        self.vcpus = vcpus
        self.model = System(_NEVER, paths).model
        self.shape = System(_NEVER, paths).shape
        self.props = tuple(props)
        self._step_props = tuple(p for p in props if p.kind is Kind.STEP)
        self._state_props = tuple(p for p in props if p.kind is Kind.STATE)
        self.states: list[State] = []
        self._ids: dict[State, int] = {}
        #: per state: its moves (None: not expanded yet), the state properties it violates
        self._moves: list[list[Move] | None] = []
        self._bad: list[frozenset[str]] = []
        self._orbits: dict[int, int] = {}
        self.classes: list[UpdateClass] = []
        self._class_ids: dict[UpdateClass, int] = {}
        #: what an outcome depends on (the explicit engine's memo key): the classes
        #: it asks about; with the answers: the outcome
        self._asked: dict[Any, tuple[int, ...]] = {}
        self._outcomes: dict[Any, Outcome[bool]] = {}
        self._actions = semantics.actions(vcpus, self.shape, self.model)
        self.initial = tuple(
            self._number(s) for s in semantics.initial_states(vcpus, self.shape, self.model)
        )
        #: steps computed, over every exploration
        self.computed = 0

    # -- numbering

    def _number(self, state: State) -> int:
        n = self._ids.get(state)
        if n is None:
            n = self._ids[state] = len(self.states)
            self.states.append(state)
            self._moves.append(None)
            self._bad.append(
                frozenset(p.name for p in self._state_props if semantics.state_is_bad(p, state))
            )
        return n

    def class_id(self, cls: UpdateClass) -> int:
        n = self._class_ids.get(cls)
        if n is None:
            n = self._class_ids[cls] = len(self.classes)
            self.classes.append(cls)
        return n

    def orbit(self, n: int) -> int:
        found = self._orbits.get(n)
        if found is None:
            found = self._orbits[n] = orbit_size(self.states[n])
        return found

    def state_bad(self, n: int) -> frozenset[str]:
        """The state properties state ``n`` violates."""
        return self._bad[n]

    # -- steps

    def _expand(self, n: int, rule: FlushRule) -> list[Move]:
        """The actions out of state ``n`` worth trying, each stepped under ``rule``:
        one vCPU per distinct record, in canonical order, without those no rule
        enables (they ask the rule nothing and are not enabled)."""
        state = self.states[n]
        seen: set[Any] = set()
        representatives = set()
        for v, record in enumerate(state.vcpus):
            if record not in seen:
                seen.add(record)
                representatives.add(v)
        found = []
        for action in self._actions:
            if action.vcpu is not None and action.vcpu not in representatives:
                continue
            op = self.model.by_name(action.op)
            if not semantics.available(self.model, op, state):
                continue
            move = Move(action, op, (), {})
            if self._compute(n, move, rule) is not None or move.asked:
                found.append(move)
        self._moves[n] = found
        return found

    def _compute(self, n: int, move: Move, rule: FlushRule) -> Edge | None:
        """``move``'s step out of state ``n`` under ``rule``, computed and kept."""
        self.computed += 1
        state, action, op = self.states[n], move.action, move.op
        actor = state.actor(op, action)
        probe = (action.op, state.shared, actor, action.gfn, action.params)
        asked = self._asked.get(probe)
        out = None
        if asked is not None:
            answers = tuple(self.answer(rule, c) for c in asked)
            out = self._outcomes.get((probe, answers))
        if out is None:
            recorder = _Recorder(rule, [], [])
            window = state.window(action)
            out = apply(CONCRETE, recorder, self.paths, op, window, dict(action.params))
            recorded = tuple(self.class_id(c) for c in recorder.asked)
            if asked is not None and asked != recorded:
                raise AssertionError(f"{action.label}: the rule was asked about other classes")
            asked = self._asked[probe] = recorded
            answers = tuple(recorder.answers)
            self._outcomes[(probe, answers)] = out
        assert asked is not None
        move.asked = asked
        edge = None
        if out.enabled:
            after = semantics.after(op, state, action, out)
            canon, perm = canonical(after)
            window = state.window(action)
            consulted: tuple[int, ...] = ()
            if out.rule_consulted:
                ad = window.slot.ad_enabled
                consulted = tuple(
                    self.class_id(UpdateClass(old, new, ad))
                    for old, new in zip(window.shared.sptes, out.window.shared.sptes, strict=True)
                    if old.present and old != new
                )
            # as semantics.step_is_bad, with the window at hand
            bad = frozenset(
                p.name
                for p in self._step_props
                if p.bad_step is not None and p.bad_step(CONCRETE, op, window, out)
            )
            edge = Edge(self._number(canon), perm, bad, consulted)
        move.steps[answers] = edge
        return edge

    def answer(self, rule: FlushRule, cls: int) -> bool:
        c = self.classes[cls]
        return bool(rule.decide(CONCRETE, c.old, c.new, c.ad_enabled))

    # -- exploring

    def explore(
        self,
        rule: FlushRule,
        max_states: int | None = DEFAULT_MAX_STATES,
        stop_on: Sequence[Property] = (),
        callers: dict[int, dict[str, Operation]] | None = None,
    ) -> Search:
        """Breadth-first under ``rule``, in the explicit engine's order. Stops at
        the first step that violates a step property of ``stop_on`` or leads to a
        state that violates a state property of it (step properties first, each
        kind in ``stop_on``'s order). ``callers``: filled with every class the rule
        is consulted on, and the operations that consult it."""
        for p in stop_on:
            if p not in self.props:
                raise ValueError(f"the graph does not judge {p.name}")
        step_names = [p.name for p in stop_on if p.kind is Kind.STEP]
        state_names = [p.name for p in stop_on if p.kind is Kind.STATE]
        wanted = frozenset(p.name for p in stop_on)
        search = Search(self)
        parent = search.parent
        answers: dict[int, bool] = {}
        moves_of, bad_of, vcpus = self._moves, self._bad, self.vcpus
        queue: deque[int] = deque()

        def store() -> None:
            if max_states is not None and (len(parent) + 1) * vcpus > max_states:
                raise StateBudgetExceeded(max_states, vcpus, True, len(parent))

        for start in self.initial:
            store()
            parent[start] = None
            queue.append(start)
        while queue:
            interrupt.check()
            n = queue.popleft()
            moves = moves_of[n]
            if moves is None:
                moves = self._expand(n, rule)
            for move in moves:
                asked = move.asked
                if asked:
                    key = []
                    for c in asked:
                        a = answers.get(c)
                        if a is None:
                            a = answers[c] = self.answer(rule, c)
                        key.append(a)
                    edge = move.steps.get(tuple(key), _MISSING)
                    if edge is _MISSING:
                        edge = self._compute(n, move, rule)
                else:
                    edge = move.steps[()]
                if edge is None:
                    continue
                after = edge.after
                if wanted:
                    hit = None
                    if edge.bad and not wanted.isdisjoint(edge.bad):
                        hit = next(p for p in step_names if p in edge.bad)
                    elif bad_of[after] and not wanted.isdisjoint(bad_of[after]):
                        hit = next(p for p in state_names if p in bad_of[after])
                    if hit is not None:
                        search.stop = (n, move, edge, hit)
                        return search
                if callers is not None and edge.consulted:
                    for c in edge.consulted:
                        callers.setdefault(c, {})[move.op.name] = move.op
                if after not in parent:
                    store()
                    parent[after] = (n, move.action, edge.perm)
                    queue.append(after)
        return search


class _Never:
    """Never flushes: what a graph's model is declared with (a step is always
    computed with the rule under exploration)."""

    def decide(self, logic: Logic[B], old: Spte[B], new: Spte[B], ad_enabled: B) -> B:
        return logic.const(False)


_NEVER = _Never()


def first_violation(
    graph: RuleGraph,
    rule: FlushRule,
    props: Sequence[Property],
    max_states: int | None = DEFAULT_MAX_STATES,
) -> tuple[Property, State, tuple[Action, ...]] | None:
    """The shortest violation of any of ``props`` under ``rule`` (the first bad
    step, or step into a bad state, breadth-first in the explicit engine's order):
    the property, a concrete initial state and the actions; or None."""
    search = graph.explore(rule, max_states, stop_on=props)
    if search.stop is None:
        return None
    n, move, _, name = search.stop
    initial, actions, where = search.trace_to(n)
    last = move.action
    if last.vcpu is not None:
        last = dataclasses.replace(last, vcpu=where[last.vcpu])
    prop = next(p for p in props if p.name == name)
    return prop, initial, (*actions, last)


def reach(
    graph: RuleGraph, rule: FlushRule, max_states: int | None = DEFAULT_MAX_STATES
) -> tuple[dict[UpdateClass, dict[str, Operation]], int]:
    """Every class the rule is consulted on in the states reachable under ``rule``,
    with the operations that consult it; and the number of concrete states."""
    callers: dict[int, dict[str, Operation]] = {}
    search = graph.explore(rule, max_states, callers=callers)
    return {graph.classes[c]: ops for c, ops in callers.items()}, search.raw_states
