"""Nothing unchecked reaches the user.

* An invariant is certified by three plain queries on a fresh solver, at the vCPU
  count the user asked for; all must be UNSAT:

      initiation   init(s) and not I(s)
      consecution  I(s) and step(s, a, t) and not I(t)
      safety       I(s) and bad(s)                         (state property)
                   I(s) and step(s, a, t) and bad(s, a, t)  (step property)

* A counterexample is replayed through the pure-Python step function: the initial
  state must be initial, every action enabled, every successor equal to the one
  the solver claimed, and the property violated at the last step and nowhere
  before.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from checker.engines import semantics
from checker.engines.bmc import SmtTrace
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant
from checker.engines.smt import (
    Answer,
    Budget,
    assert_all,
    check,
    conjunction,
    implication,
    negation,
    new_solver,
)
from checker.engines.trace import Trace
from checker.errors import CheckerError, InternalError
from checker.model import Kind, Property, System


@dataclass(frozen=True)
class Certificate:
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


def certify(enc: Encoding, prop: Property, invariant: Invariant, budget: Budget) -> Certificate:
    ctx = enc.context
    step = enc.transition(0)
    s, t = step.before, step.after
    now, after = invariant.instantiate(s), invariant.instantiate(t)
    if prop.kind is Kind.STATE:
        bad = enc.bad_state(prop, s)
    else:
        bad = conjunction([step.formula, enc.bad_step(prop, step)], ctx)
    queries = {
        "initiation": conjunction([enc.init(s), negation(now, ctx)], ctx),
        "consecution": conjunction([now, step.formula, negation(after, ctx)], ctx),
        "safety": conjunction([now, bad], ctx),
    }
    solver = new_solver(budget, ctx)
    answers: dict[str, Answer] = {}
    for name, query in queries.items():
        lit = z3.Bool(f"certify_{name}", ctx=ctx)
        assert_all(solver, implication(lit, query, ctx))
        answers[name] = check(solver, lit)
        assert_all(solver, negation(lit, ctx))
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
