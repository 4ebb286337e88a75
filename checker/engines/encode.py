"""The model interpreted with z3 terms: states, actions, init and the transition relation.

Vocabulary
----------
A state copy tagged ``k`` has one Bool per leaf of the model's vocabulary
(``checker.model.vocabulary``), named after it: ``writable@k`` for the SPTE's,
``dirty_logging@k`` for the memslot's, ``tlb_writable[v]@k`` for vCPU ``v``'s TLB
entry (with several gfns ``writable[1]@k`` and ``tlb_writable[1][v]@k``). An action
copy has ``op@k`` (bit-vector, index into the model's operations), ``vcpu@k``
(bit-vector), ``gfn@k`` when the shape has several gfns, and one Bool per
parameter, ``param_host_writable@k`` ... (prefixed: the SPTE has a
``host_writable`` field of its own). Variables are created here and looked up by
(name, tag); model names are never parsed back.

Transition relation
-------------------
``transition(k)`` relates state ``k`` to state ``k+1`` through action ``k``: it is

    op < #ops  and  vcpu < N  (and gfn < #gfns)
    and  for each operation i and gfn g it reaches:
           op = i and gfn = g  =>  enabled(s)  and  lock available(s)
                                   and  t.shared = shared'  and  flush = flush'
                                   and  actor' = the actor's record after the step
                                   and  (vcpu = 0 if i has no vCPU)
                                   and  (p = false for each parameter i ignores)
    and  for each vCPU v:  t.vcpu[v] = vcpu_after(flush, vcpu = v, actor', s.vcpu[v])

where every right-hand side is the model's own function (``apply``,
``shared_after``, ``vcpu_after``, ``blocks``) evaluated on z3 terms, with the
acting vCPU's record read through a multiplexer. ``flush`` and ``actor'`` are
auxiliary Bools (``flush@k``, ``actor_tlb_cached@k`` ...), functions of ``s`` and
the action. Pinning unused parameters and the vCPU of vCPU-less operations makes
each action's encoding unique, so the successor of a state under a concrete
action is unique and a counterexample's actions are canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import z3

from checker.engines.smt import Symbolic, main_context, truths
from checker.model import (
    PARAMS,
    Actor,
    ActorKind,
    Kind,
    Operation,
    Outcome,
    Property,
    Reach,
    Shared,
    System,
    Window,
    apply,
)
from checker.model.operation import blocks, shared_after, takes_lock, vcpu_after
from checker.model.vocabulary import equal, leaves, leaves_by_name, rebuild, select

if TYPE_CHECKING:
    # decoding a solver's model into concrete states and actions is for traces only
    from checker.engines.semantics import Action, State


def _bits(count: int) -> int:
    """Bits needed to number ``count`` things (at least one)."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class SymState:
    """A state as z3 terms: the shared record and one record per vCPU."""

    shared: Shared[z3.BoolRef]
    vcpus: tuple[Actor[z3.BoolRef], ...]
    #: the vocabulary's name of each leaf of ``shared`` and of a vCPU's record
    shared_names: tuple[str, ...]
    vcpu_names: tuple[str, ...]

    def variables(self) -> list[z3.BoolRef]:
        """Every state variable, in the vocabulary's order."""
        return [*leaves(self.shared), *leaves(self.vcpus)]

    def named(self) -> dict[int, tuple[str, int | None]]:
        """Each state variable's z3 id: its vocabulary name and its vCPU (None for
        the shared state)."""
        where: dict[int, tuple[str, int | None]] = {}
        for name, x in zip(self.shared_names, leaves(self.shared), strict=True):
            where[x.get_id()] = (name, None)
        for v, record in enumerate(self.vcpus):
            for name, x in zip(self.vcpu_names, leaves(record), strict=True):
                where[x.get_id()] = (name, v)
        return where

    def by_name(self) -> dict[tuple[str, int | None], z3.BoolRef]:
        """Every state variable by (name, vCPU) (the first of a name recurring); made
        once per state (an invariant's instantiation looks up every literal)."""
        found: dict[tuple[str, int | None], z3.BoolRef] | None = self.__dict__.get("_by_name")
        if found is None:
            shared = leaves_by_name(self.shared_names, self.shared)
            found = {(name, None): x for name, x in shared.items()}
            for v, record in enumerate(self.vcpus):
                named = leaves_by_name(self.vcpu_names, record)
                found.update(((name, v), x) for name, x in named.items())
            # a frozen dataclass: kept beside its fields, which equality compares
            self.__dict__["_by_name"] = found
        return found


@dataclass(frozen=True)
class SymAction:
    """An action as z3 terms: the operation, the actor, the gfn (if the model has
    more than one) and the parameters."""

    op: z3.BitVecRef
    vcpu: z3.BitVecRef
    gfn: z3.BitVecRef | None
    params: dict[str, z3.BoolRef]

    def variables(self) -> list[z3.ExprRef]:
        gfn = [] if self.gfn is None else [self.gfn]
        return [self.op, self.vcpu, *gfn, *(self.params[p] for p in PARAMS)]


@dataclass(frozen=True)
class Case:
    """One (operation, gfn) of a transition: its selector, the window it saw and
    its outcome."""

    op: Operation
    gfn: int
    selected: z3.BoolRef
    before: Window[z3.BoolRef]
    outcome: Outcome[z3.BoolRef]


@dataclass(frozen=True)
class SymStep:
    """One unrolled transition: its constraint and each case's outcome."""

    before: SymState
    action: SymAction
    after: SymState
    formula: z3.BoolRef
    cases: tuple[Case, ...]
    #: the step's variables that are not state variables (action and auxiliaries)
    local: tuple[z3.ExprRef, ...]


class Encoding:
    """The transition system of ``system`` (a rule, its paths, a shape) with
    ``vcpus`` vCPUs.

    States, actions and transitions are built once per index and cached: every
    engine of a run unrolls the same terms. All terms live in ``context`` (z3's
    main context unless given).
    """

    def __init__(self, system: System, vcpus: int, context: z3.Context | None = None) -> None:
        self.system = system
        self.model = model = system.model
        self.shape = system.shape
        self.op_bits = _bits(len(model.operations))
        if self.shape.host_threads != 1:
            raise ValueError("the SMT encoding has one host thread")
        self.vcpus = vcpus
        self.vcpu_bits = _bits(vcpus)
        self.gfn_bits = _bits(self.shape.gfns)
        self.context = context if context is not None else main_context()
        self.logic = Symbolic(self.context)
        self._states: dict[int, SymState] = {}
        self._actions: dict[int, SymAction] = {}
        self._transitions: dict[int, SymStep] = {}
        self._shared_template = model.initial_shared(self.logic, self.shape)
        self._vcpu_template = model.initial_actor(self.logic, self.shape)
        self.shared_names = model.shared_names(self.shape)
        self.vcpu_names = model.vcpu_names(self.shape)

    # -- vocabulary
    def state(self, k: int) -> SymState:
        if k not in self._states:
            self._states[k] = self.state_vars(str(k))
        return self._states[k]

    def state_vars(self, tag: str) -> SymState:
        def b(name: str) -> z3.BoolRef:
            return z3.Bool(f"{name}@{tag}", ctx=self.context)

        shared = rebuild(self._shared_template, iter([b(n) for n in self.shared_names]))
        vcpus = tuple(
            rebuild(self._vcpu_template, iter([b(f"{n}[{v}]") for n in self.vcpu_names]))
            for v in range(self.vcpus)
        )
        return SymState(shared, vcpus, self.shared_names, self.vcpu_names)

    def action(self, k: int) -> SymAction:
        if k not in self._actions:
            ctx = self.context
            gfn = z3.BitVec(f"gfn@{k}", self.gfn_bits, ctx=ctx) if self.shape.gfns > 1 else None
            self._actions[k] = SymAction(
                op=z3.BitVec(f"op@{k}", self.op_bits, ctx=ctx),
                vcpu=z3.BitVec(f"vcpu@{k}", self.vcpu_bits, ctx=ctx),
                gfn=gfn,
                params={p: z3.Bool(f"param_{p}@{k}", ctx=ctx) for p in PARAMS},
            )
        return self._actions[k]

    def transition(self, k: int) -> SymStep:
        """State ``k`` to state ``k+1`` through action ``k``."""
        if k not in self._transitions:
            self._transitions[k] = self._step(self.state(k), self.action(k), self.state(k + 1), k)
        return self._transitions[k]

    # -- formulas
    def init(self, s: SymState) -> z3.BoolRef:
        """Nothing mapped, cached or held; the configuration free, as the model
        admits it."""
        L = self.logic
        config = self.model.config_of(s.shared.slot)
        start = self.model.initial_shared(L, self.shape, config)
        empty = self.model.initial_actor(L, self.shape)
        return L.and_(
            self.model.admits(L, config),
            equal(L, s.shared, start),
            *(equal(L, v, empty) for v in s.vcpus),
        )

    def _step(self, s: SymState, a: SymAction, t: SymState, tag: int) -> SymStep:
        L = self.logic
        n = self.vcpus
        ctx = self.context
        flush = z3.Bool(f"flush@{tag}", ctx=ctx)
        actor_new: Actor[z3.BoolRef] = rebuild(
            self._vcpu_template,
            iter([z3.Bool(f"actor_{name}@{tag}", ctx=ctx) for name in self.vcpu_names]),
        )
        is_actor = [a.vcpu == v for v in range(n)]
        actor_old = self._mux(is_actor, s.vcpus)
        clauses: list[z3.BoolRef] = []
        # a bound equal to 2**bits would wrap to 0 and empty the relation
        operations = self.model.operations
        if len(operations) < 1 << self.op_bits:
            clauses.append(z3.ULT(a.op, len(operations)))
        if n < 1 << self.vcpu_bits:
            clauses.append(z3.ULT(a.vcpu, n))
        if a.gfn is not None and self.shape.gfns < 1 << self.gfn_bits:
            clauses.append(z3.ULT(a.gfn, self.shape.gfns))
        cases: list[Case] = []
        for i, op in enumerate(operations):
            vcpu_op = op.actor is ActorKind.VCPU
            record = actor_old if vcpu_op else s.shared.hosts[0]
            reach = range(self.shape.gfns) if op.reach is Reach.GFN else range(1)
            for g in reach:
                # a slot-wide step is selected by its operation alone (its gfn is
                # pinned to 0 below): a selector on the gfn would leave op = i,
                # gfn = 1 unconstrained
                sel = a.op == i
                if a.gfn is not None and op.reach is Reach.GFN:
                    sel = z3.And(sel, a.gfn == g)
                before = self.model.window(L, self.shape, s.shared, record, g)
                out = apply(
                    L,
                    self.system.rule,
                    self.system.paths,
                    op,
                    before,
                    {p: a.params[p] for p in op.params},
                )
                pins = [L.not_(a.params[p]) for p in PARAMS if p not in op.params]
                if not vcpu_op:
                    pins.append(a.vcpu == 0)
                if a.gfn is not None and op.reach is not Reach.GFN:
                    pins.append(a.gfn == 0)
                # a host step leaves every vCPU's record as it was
                mine = out.window.actor if vcpu_op else actor_old
                clauses.append(
                    z3.Implies(
                        sel,
                        L.and_(
                            out.enabled,
                            *self._available(op, s),
                            equal(L, t.shared, shared_after(op, out, 0)),
                            L.iff(flush, out.flush),
                            equal(L, actor_new, mine),
                            *pins,
                        ),
                    )
                )
                cases.append(Case(op, g, sel, before, out))
        for v in range(n):
            clauses.append(
                equal(L, t.vcpus[v], vcpu_after(L, flush, is_actor[v], actor_new, s.vcpus[v]))
            )
        local = (*a.variables(), flush, *leaves(actor_new))
        return SymStep(s, a, t, L.and_(*clauses), tuple(cases), local)

    def _available(self, op: Operation, s: SymState) -> list[z3.BoolRef]:
        """No actor keeps ``op`` from taking ``mmu_lock`` (nothing to say when the
        model tracks no lock across steps)."""
        held = self.model.locals
        if not takes_lock(op) or not held:
            return []
        L = self.logic
        return [L.not_(blocks(L, op.lock, r, held)) for r in (*s.vcpus, *s.shared.hosts)]

    def bad_state(self, prop: Property, s: SymState) -> z3.BoolRef:
        assert prop.kind is Kind.STATE and prop.bad_state is not None
        return prop.bad_state(self.logic, s.shared, s.vcpus, self.shape)

    def bad_step(self, prop: Property, st: SymStep) -> z3.BoolRef:
        assert prop.kind is Kind.STEP and prop.bad_step is not None
        L = self.logic
        return L.or_(
            *(L.and_(c.selected, prop.bad_step(L, c.op, c.before, c.outcome)) for c in st.cases)
        )

    # -- decoding
    def decode_state(self, model: z3.ModelRef, s: SymState) -> State:
        from checker.engines.semantics import State

        shared = rebuild(s.shared, iter(truths(model, leaves(s.shared))))
        vcpus = tuple(rebuild(v, iter(truths(model, leaves(v)))) for v in s.vcpus)
        return State(shared, vcpus, self.shape, self.model)

    def decode_action(self, model: z3.ModelRef, a: SymAction) -> Action:
        from checker.engines.semantics import Action

        def number(x: z3.BitVecRef) -> int:
            return int(model.eval(x, model_completion=True).as_long())

        op = self.model.operations[number(a.op)]
        vcpu = number(a.vcpu) if op.by_vcpu else None
        gfn = number(a.gfn) if a.gfn is not None and op.reach is Reach.GFN else None
        params = tuple(
            (p, bool(z3.is_true(model.eval(a.params[p], model_completion=True)))) for p in op.params
        )
        return Action(op.name, vcpu, params, gfn)

    # -- constraints from concrete values
    def state_is(self, s: SymState, state: State) -> z3.BoolRef:
        L = self.logic
        lits = [
            L.iff(sym, L.const(value))
            for sym, value in zip(s.variables(), concrete_variables(state), strict=True)
        ]
        return L.and_(*lits)

    def action_is(self, a: SymAction, action: Action) -> z3.BoolRef:
        given = dict(action.params)
        gfn = [] if a.gfn is None else [a.gfn == (action.gfn or 0)]
        return z3.And(
            a.op == self.model.index(action.op),
            a.vcpu == (action.vcpu or 0),
            *gfn,
            *(a.params[p] == given.get(p, False) for p in PARAMS),
        )

    # -- helpers
    def _mux(self, is_actor: Sequence[z3.BoolRef], records: Sequence[Any]) -> Any:
        L = self.logic
        result = records[-1]
        for sel, record in zip(reversed(is_actor[:-1]), reversed(records[:-1]), strict=True):
            result = select(L, sel, record, result)
        return result


def concrete_variables(state: State) -> list[bool]:
    """A concrete state's values, in ``SymState.variables()`` order."""
    return [*leaves(state.shared), *leaves(state.vcpus)]
