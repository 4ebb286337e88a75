"""Bounded model checking: the shortest counterexample, made canonical.

One incremental QF_FD solver holds ``init(s0) and step(s0, a0, s1) and ...``, grown
one step per depth. At depth k the query is ``bad_k`` (``bad(s_k)`` for a state
property, ``bad(s_{k-1}, a_{k-1}, s_k)`` for a step property) through an
activation literal, retired once it is UNSAT. The first SAT depth is the length of
the shortest counterexample.

Canonical form: the solver's model at that depth depends on seeds and versions.
Among all counterexamples of that length we take the lexicographically least
sequence of choices (the initial A/D setting, then each action's operation, vCPU and
parameters, most significant bit first), fixing one bit at a time: keep 0 if
``bad_k`` stays satisfiable, else 1. Transitions are deterministic given the
action, so the whole trace is then determined.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import z3

from checker.engines.encode import Encoding, SymAction, SymState
from checker.engines.semantics import Action, State
from checker.engines.smt import Answer, Budget, check, new_solver
from checker.model import PARAMS, Kind, Property
from checker.model.vocabulary import CONFIG_FIELDS


@dataclass(frozen=True)
class SmtTrace:
    """A counterexample as the solver gave it: actions and decoded states."""

    actions: tuple[Action, ...]
    #: ``len(actions) + 1`` states, the initial one first
    states: tuple[State, ...]


@dataclass(frozen=True)
class BmcResult:
    #: SAT: ``trace`` violates the property; UNSAT: nothing up to ``depth``
    answer: Answer
    depth: int
    trace: SmtTrace | None = None
    reason: str = ""


class _Unknown(Exception):
    pass


def shortest_counterexample(
    enc: Encoding, prop: Property, max_depth: int, budget: Budget
) -> BmcResult:
    """The canonical shortest trace violating ``prop``, searching up to ``max_depth`` steps."""
    solver = new_solver(budget, enc.context)
    states: list[SymState] = [enc.state(0)]
    actions: list[SymAction] = []
    solver.add(enc.init(states[0]))
    for depth in range(max_depth + 1):
        if depth > 0:
            step = enc.transition(depth - 1)
            actions.append(step.action)
            states.append(step.after)
            solver.add(step.formula)
        if prop.kind is Kind.STATE:
            bad = enc.bad_state(prop, states[depth])
        elif depth > 0:
            bad = enc.bad_step(prop, step)
        else:
            continue
        goal = z3.Bool(f"bad@{depth}", ctx=enc.context)
        solver.add(z3.Implies(goal, bad))
        answer = check(solver, goal)
        if answer is Answer.UNKNOWN:
            return BmcResult(Answer.UNKNOWN, depth, reason=f"bmc: {solver.reason_unknown()}")
        if answer is Answer.SAT:
            try:
                model = _least_model(solver, goal, enc, states[0], actions)
            except _Unknown:
                return BmcResult(Answer.UNKNOWN, depth, reason=f"bmc: {solver.reason_unknown()}")
            trace = SmtTrace(
                actions=tuple(enc.decode_action(model, a) for a in actions),
                states=tuple(enc.decode_state(model, s) for s in states),
            )
            return BmcResult(Answer.SAT, depth, trace)
        solver.add(z3.Not(goal))
    return BmcResult(Answer.UNSAT, max_depth)


def _choice_bits(enc: Encoding, initial: SymState, actions: list[SymAction]) -> list[z3.BoolRef]:
    """Every free choice of a trace, most significant first."""
    slot = initial.shared.slot
    bits: list[z3.BoolRef] = [getattr(slot, name) for name in CONFIG_FIELDS]
    for a in actions:
        for vector in (a.op, a.vcpu, *([] if a.gfn is None else [a.gfn])):
            width = vector.size()
            bits.extend(z3.Extract(i, i, vector) == 1 for i in reversed(range(width)))
        bits.extend(a.params[p] for p in PARAMS)
    return bits


def _least_model(
    solver: z3.Solver,
    goal: z3.BoolRef,
    enc: Encoding,
    initial: SymState,
    actions: list[SymAction],
) -> z3.ModelRef:
    """The model whose choice bits, most significant first, are the least: each bit is
    0 if it can be, given the bits before it.

    ``witness`` satisfies every choice made so far (the goal's check made the
    first). A bit it has at 0 can be 0, with no query; only a bit it has at 1 is
    asked about, and a satisfiable answer is the next witness. So each choice is
    the one a query per bit would make, with a query only where the answer is not
    known already."""
    fixed = [goal]
    names = count()
    witness = solver.model()
    for bit in _choice_bits(enc, initial, actions):
        zero = z3.Bool(f"choose@{next(names)}", ctx=enc.context)
        solver.add(z3.Implies(zero, z3.Not(bit)))
        if z3.is_false(witness.eval(bit, model_completion=True)):
            fixed.append(zero)
            continue
        answer = check(solver, *fixed, zero)
        if answer is Answer.UNKNOWN:
            raise _Unknown
        if answer is Answer.SAT:
            fixed.append(zero)
            witness = solver.model()
        else:
            one = z3.Bool(f"choose@{next(names)}", ctx=enc.context)
            solver.add(z3.Implies(one, bit))
            fixed.append(one)
    if check(solver, *fixed) is not Answer.SAT:
        raise _Unknown
    return solver.model()
