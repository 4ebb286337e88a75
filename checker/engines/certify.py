"""Nothing unchecked reaches the user.

* An invariant is certified by three plain queries, at the vCPU count the user
  asked for; all must be UNSAT:

      initiation   init(s) and not I(s)
      consecution  I(s) and step(s, a, t) and not I(t)
      safety       I(s) and bad(s)                         (state property)
                   I(s) and step(s, a, t) and bad(s, a, t)  (step property)

  The certifications of one encoding share a solver, so that the step relation,
  most of every query, is turned into clauses once instead of once per property:
  the solver holds ``on => step(s, a, t)``; each query is asserted behind a
  literal of its own, checked assuming it (and ``on`` where the query has a step),
  then retired by asserting the literal false. Retired queries and an unassumed
  step constrain nothing, so each query is decided exactly as on a fresh solver
  (what the solver learned is implied by what it holds). A solver that answers
  unknown is not used again: the next certification starts a new one.

* A counterexample is replayed through the pure-Python step function: the initial
  state must be initial, every action enabled, every successor equal to the one
  the solver claimed, and the property violated at the last step and nowhere
  before.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import z3

from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant
from checker.engines.smt import (
    Answer,
    Budget,
    SharedSolver,
    assert_all,
    conjunction,
    implication,
    negation,
    new_solver,
)
from checker.errors import CheckerError, InternalError
from checker.model import Kind, Property, System

if TYPE_CHECKING:
    from checker.engines.bmc import SmtTrace
    from checker.engines.trace import Trace


@dataclass(frozen=True)
class Certificate:
    """The three plain queries' answers at ``vcpus`` vCPUs: the invariant is
    certified when all are UNSAT."""

    vcpus: int
    initiation: Answer
    consecution: Answer
    safety: Answer

    @property
    def ok(self) -> bool:
        return all(a is Answer.UNSAT for a in (self.initiation, self.consecution, self.safety))

    @property
    def unknown(self) -> bool:
        return any(a is Answer.UNKNOWN for a in (self.initiation, self.consecution, self.safety))


#: each encoding's shared solver by work budget (rlimit), with the literal that
#: turns its step relation on
_SHARED: weakref.WeakKeyDictionary[Encoding, dict[int, tuple[SharedSolver, z3.BoolRef]]] = (
    weakref.WeakKeyDictionary()
)


def _shared(enc: Encoding, budget: Budget) -> tuple[SharedSolver, z3.BoolRef]:
    by_budget = _SHARED.setdefault(enc, {})
    found = by_budget.get(budget.rlimit)
    if found is None:
        ctx = enc.context
        solver = new_solver(budget, ctx)
        on = z3.Bool("certify_step", ctx=ctx)
        assert_all(solver, implication(on, enc.transition(0).formula, ctx))
        found = by_budget[budget.rlimit] = (SharedSolver(solver), on)
    return found


def certify(enc: Encoding, prop: Property, invariant: Invariant, budget: Budget) -> Certificate:
    ctx = enc.context
    step = enc.transition(0)
    s, t = step.before, step.after
    now, after = invariant.instantiate(s), invariant.instantiate(t)
    stepping = prop.kind is not Kind.STATE
    bad = enc.bad_state(prop, s) if prop.kind is Kind.STATE else enc.bad_step(prop, step)
    # each query, and whether it has the step (assumed through the shared literal)
    queries = {
        "initiation": (conjunction([enc.init(s), negation(now, ctx)], ctx), False),
        "consecution": (conjunction([now, negation(after, ctx)], ctx), True),
        "safety": (conjunction([now, bad], ctx), stepping),
    }
    shared, on = _shared(enc, budget)
    answers = {
        name: shared.decide(name, query, *([on] if with_step else []))
        for name, (query, with_step) in queries.items()
    }
    if shared.spoiled:
        _SHARED[enc].pop(budget.rlimit, None)  # not used again
    return Certificate(enc.vcpus, **answers)


def replay(
    system: System,
    rule_name: str,
    prop: Property,
    smt: SmtTrace,
    error: type[CheckerError] = InternalError,
) -> Trace:
    """Replay ``smt`` through the step function; a ``Trace`` if it checks out.

    A mismatch raises ``error``: an internal error for a trace the solver just gave,
    an input error for a trace read from a file.
    """

    # the step function and traces: imported here, for a run with a counterexample
    from checker.engines import semantics
    from checker.engines.trace import Trace

    def fail(message: str) -> CheckerError:
        return error(f"counterexample for {prop.name} failed to replay: {message}")

    start = smt.states[0]
    if start not in semantics.initial_states(start.vcpu_count, start.shape, system.model):
        raise fail("its first state is not an initial state")
    steps = []
    state = start
    for i, action in enumerate(smt.actions, start=1):
        if semantics.state_is_bad(prop, state):
            raise fail(f"the property is already violated before step {i}")
        s = semantics.step(system, state, action)
        if s is None:
            raise fail(f"step {i} ({action.label}) is not enabled")
        if s.after != smt.states[i]:
            raise fail(f"step {i} ({action.label}) leads elsewhere than the solver claimed")
        if i < len(smt.actions) and semantics.step_is_bad(prop, s):
            raise fail(f"the property is already violated at step {i}")
        steps.append(s)
        state = s.after
    violated = (
        semantics.state_is_bad(prop, state)
        if prop.kind is Kind.STATE
        else bool(steps) and semantics.step_is_bad(prop, steps[-1])
    )
    if not violated:
        raise fail("its last step does not violate the property")
    return Trace(
        rule_name=rule_name, prop=prop, paths=system.paths, initial=start, steps=tuple(steps)
    )
