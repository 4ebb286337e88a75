"""The model interpreted with z3 terms: states, actions, init and the transition relation.

Vocabulary
----------
A state copy tagged ``k`` has one Bool per field, named ``field@k`` for the gfn and
SPTE fields and ``tlb_cached[v]@k`` / ``tlb_writable[v]@k`` for vCPU ``v``'s TLB
entry. An action copy has ``op@k`` (bit-vector, index into ``OPERATIONS``),
``vcpu@k`` (bit-vector) and one Bool per parameter, ``param_host_writable@k`` ...
(prefixed: the SPTE has a ``host_writable`` field of its own).
Variables are created here and looked up by (field, tag); model names are never
parsed back.

Transition relation
-------------------
``transition(k)`` relates state ``k`` to state ``k+1`` through action ``k``: it is

    op < #ops  and  vcpu < N
    and  for each operation i:  op = i  =>  enabled_i(s)  and  t.gfn = gfn_i(s)
                                          and  flush = flush_i(s)  and  actor' = tlb_i(s)
                                          and  (vcpu = 0 if i has no vCPU)
                                          and  (p = false for each parameter i ignores)
    and  for each vCPU v:  t.tlb[v] = none             if flush
                                    = actor'           if vcpu = v
                                    = s.tlb[v]         otherwise

where ``gfn_i, flush_i, tlb_i`` come from ``checker.model.apply`` evaluated on z3
terms, with ``tlb[vcpu]`` read through a multiplexer. ``flush`` and ``actor'`` are
auxiliary Bools (``flush@k``, ``actor_cached@k``, ``actor_writable@k``), functions of
``s`` and the action. Pinning unused parameters and the vCPU of vCPU-less
operations makes each action's encoding unique, so the successor of a state under
a concrete action is unique and a counterexample's actions are canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import z3

from checker.engines.semantics import Action, State
from checker.engines.smt import Symbolic
from checker.model import (
    GFN_FIELDS,
    OPERATIONS,
    PARAMS,
    SPTE_FIELDS,
    TLB_FIELDS,
    Gfn,
    Kind,
    Outcome,
    Property,
    Spte,
    System,
    Tlb,
    TlbEntry,
    apply,
    initial_gfn,
)


def _bits(count: int) -> int:
    """Bits needed to number ``count`` things (at least one)."""
    return max(1, (count - 1).bit_length())


OP_BITS = _bits(len(OPERATIONS))


@dataclass(frozen=True)
class SymState:
    gfn: Gfn[z3.BoolRef]
    tlbs: tuple[TlbEntry[z3.BoolRef], ...]

    def variables(self) -> list[z3.BoolRef]:
        """Every state variable, in a fixed order."""
        spte = [getattr(self.gfn.spte, f) for f in SPTE_FIELDS]
        gfn = [getattr(self.gfn, f) for f in GFN_FIELDS]
        tlbs = [getattr(t, f) for t in self.tlbs for f in TLB_FIELDS]
        return spte + gfn + tlbs


@dataclass(frozen=True)
class SymAction:
    op: z3.BitVecRef
    vcpu: z3.BitVecRef
    params: dict[str, z3.BoolRef]

    def variables(self) -> list[z3.ExprRef]:
        return [self.op, self.vcpu, *(self.params[p] for p in PARAMS)]


@dataclass(frozen=True)
class SymStep:
    """One unrolled transition: its constraint and the per-operation outcomes."""

    before: SymState
    action: SymAction
    after: SymState
    formula: z3.BoolRef
    selected: tuple[z3.BoolRef, ...]
    outcomes: tuple[Outcome[z3.BoolRef], ...]
    #: the step's variables that are not state variables (action and auxiliaries)
    local: tuple[z3.ExprRef, ...]


def state_vars(vcpus: int, tag: str, context: z3.Context | None = None) -> SymState:
    def b(name: str) -> z3.BoolRef:
        return z3.Bool(f"{name}@{tag}", ctx=context)

    spte = Spte(**{f: b(f) for f in SPTE_FIELDS})
    gfn = Gfn(spte=spte, **{f: b(f) for f in GFN_FIELDS})
    tlbs = tuple(TlbEntry(**{f: b(f"tlb_{f}[{v}]") for f in TLB_FIELDS}) for v in range(vcpus))
    return SymState(gfn, tlbs)


class Encoding:
    """The transition system of ``system`` (a rule and its paths) with ``vcpus`` vCPUs.

    States, actions and transitions are built once per index and cached: every
    engine of a run unrolls the same terms. All terms live in ``context`` (z3's
    main context unless given).
    """

    def __init__(self, system: System, vcpus: int, context: z3.Context | None = None) -> None:
        self.system = system
        self.vcpus = vcpus
        self.vcpu_bits = _bits(vcpus)
        self.context = context if context is not None else z3.main_ctx()
        self.logic = Symbolic(self.context)
        self._states: dict[int, SymState] = {}
        self._actions: dict[int, SymAction] = {}
        self._transitions: dict[int, SymStep] = {}

    # -- vocabulary
    def state(self, k: int) -> SymState:
        if k not in self._states:
            self._states[k] = state_vars(self.vcpus, str(k), self.context)
        return self._states[k]

    def action(self, k: int) -> SymAction:
        if k not in self._actions:
            self._actions[k] = SymAction(
                op=z3.BitVec(f"op@{k}", OP_BITS, ctx=self.context),
                vcpu=z3.BitVec(f"vcpu@{k}", self.vcpu_bits, ctx=self.context),
                params={p: z3.Bool(f"param_{p}@{k}", ctx=self.context) for p in PARAMS},
            )
        return self._actions[k]

    def transition(self, k: int) -> SymStep:
        """State ``k`` to state ``k+1`` through action ``k``."""
        if k not in self._transitions:
            self._transitions[k] = self._step(self.state(k), self.action(k), self.state(k + 1), k)
        return self._transitions[k]

    # -- formulas
    def init(self, s: SymState) -> z3.BoolRef:
        """Nothing mapped or cached; ``ad_enabled`` free."""
        L = self.logic
        start = initial_gfn(L, s.gfn.ad_enabled)
        return L.and_(
            self._gfn_equal(s.gfn, start),
            *(L.and_(L.not_(t.cached), L.not_(t.writable)) for t in s.tlbs),
        )

    def _step(self, s: SymState, a: SymAction, t: SymState, tag: int) -> SymStep:
        L = self.logic
        n = self.vcpus
        ctx = self.context
        flush = z3.Bool(f"flush@{tag}", ctx=ctx)
        actor_new = TlbEntry(
            z3.Bool(f"actor_cached@{tag}", ctx=ctx), z3.Bool(f"actor_writable@{tag}", ctx=ctx)
        )
        is_actor = [a.vcpu == v for v in range(n)]
        actor_old = TlbEntry(
            cached=self._mux(is_actor, [x.cached for x in s.tlbs]),
            writable=self._mux(is_actor, [x.writable for x in s.tlbs]),
        )
        clauses: list[z3.BoolRef] = []
        # a bound equal to 2**bits would wrap to 0 and empty the relation
        if len(OPERATIONS) < 1 << OP_BITS:
            clauses.append(z3.ULT(a.op, len(OPERATIONS)))
        if n < 1 << self.vcpu_bits:
            clauses.append(z3.ULT(a.vcpu, n))
        selected: list[z3.BoolRef] = []
        outcomes: list[Outcome[z3.BoolRef]] = []
        for i, op in enumerate(OPERATIONS):
            sel = a.op == i
            out = apply(L, self.system, op, s.gfn, actor_old, {p: a.params[p] for p in op.params})
            pins = [L.not_(a.params[p]) for p in PARAMS if p not in op.params]
            if not op.by_vcpu:
                pins.append(a.vcpu == 0)
            clauses.append(
                z3.Implies(
                    sel,
                    L.and_(
                        out.enabled,
                        self._gfn_equal(t.gfn, out.gfn),
                        L.iff(flush, out.flush),
                        L.iff(actor_new.cached, out.actor_tlb.cached),
                        L.iff(actor_new.writable, out.actor_tlb.writable),
                        *pins,
                    ),
                )
            )
            selected.append(sel)
            outcomes.append(out)
        for v in range(n):
            for f in TLB_FIELDS:
                kept = L.ite(is_actor[v], getattr(actor_new, f), getattr(s.tlbs[v], f))
                clauses.append(L.iff(getattr(t.tlbs[v], f), L.and_(L.not_(flush), kept)))
        local = (*a.variables(), flush, actor_new.cached, actor_new.writable)
        return SymStep(s, a, t, L.and_(*clauses), tuple(selected), tuple(outcomes), local)

    def bad_state(self, prop: Property, s: SymState) -> z3.BoolRef:
        assert prop.kind is Kind.STATE and prop.bad_state is not None
        return prop.bad_state(self.logic, s.gfn, s.tlbs)

    def bad_step(self, prop: Property, st: SymStep) -> z3.BoolRef:
        assert prop.kind is Kind.STEP and prop.bad_step is not None
        L = self.logic
        return L.or_(
            *(
                L.and_(sel, prop.bad_step(L, op, st.before.gfn, out))
                for sel, op, out in zip(st.selected, OPERATIONS, st.outcomes, strict=True)
            )
        )

    # -- decoding
    def decode_state(self, model: z3.ModelRef, s: SymState) -> State:
        def val(x: z3.BoolRef) -> bool:
            return bool(z3.is_true(model.eval(x, model_completion=True)))

        spte = Spte(**{f: val(getattr(s.gfn.spte, f)) for f in SPTE_FIELDS})
        gfn = Gfn(spte=spte, **{f: val(getattr(s.gfn, f)) for f in GFN_FIELDS})
        tlbs = tuple(Tlb.of(TlbEntry(val(t.cached), val(t.writable))) for t in s.tlbs)
        return State(gfn, tlbs)

    def decode_action(self, model: z3.ModelRef, a: SymAction) -> Action:
        index = model.eval(a.op, model_completion=True).as_long()
        op = OPERATIONS[index]
        vcpu = model.eval(a.vcpu, model_completion=True).as_long() if op.by_vcpu else None
        params = tuple(
            (p, bool(z3.is_true(model.eval(a.params[p], model_completion=True)))) for p in op.params
        )
        return Action(op.name, vcpu, params)

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
        return z3.And(
            a.op == action.sort_key()[0],
            a.vcpu == (action.vcpu or 0),
            *(a.params[p] == given.get(p, False) for p in PARAMS),
        )

    # -- helpers
    def _gfn_equal(self, x: Gfn[z3.BoolRef], y: Gfn[z3.BoolRef]) -> z3.BoolRef:
        L = self.logic
        return L.and_(
            *(L.iff(getattr(x.spte, f), getattr(y.spte, f)) for f in SPTE_FIELDS),
            *(L.iff(getattr(x, f), getattr(y, f)) for f in GFN_FIELDS),
        )

    def _mux(self, is_actor: Sequence[z3.BoolRef], values: Sequence[z3.BoolRef]) -> z3.BoolRef:
        L = self.logic
        result = values[-1]
        for sel, value in zip(reversed(is_actor[:-1]), reversed(values[:-1]), strict=True):
            result = L.ite(sel, value, result)
        return result


def concrete_variables(state: State) -> list[bool]:
    """A concrete state's values, in ``SymState.variables()`` order."""
    spte = [getattr(state.gfn.spte, f) for f in SPTE_FIELDS]
    gfn = [getattr(state.gfn, f) for f in GFN_FIELDS]
    tlbs = [getattr(t.entry(), f) for t in state.tlbs for f in TLB_FIELDS]
    return spte + gfn + tlbs
