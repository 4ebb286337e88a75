"""Unbounded proofs with Spacer (z3's CHC engine).

The transition system becomes three Horn clauses over an unknown predicate ``Inv``::

    Inv(s)  <-  init(s)
    Inv(t)  <-  Inv(s) and step(s, a, t)
    Err     <-  Inv(s) and bad(s)                          (state property)
    Err     <-  Inv(s) and step(s, a, t) and bad(s, a, t)   (step property)

``query(Err)`` is ``unsat`` when the property holds; Spacer then gives the
interpretation of ``Inv``, an inductive invariant, which we split into lemmas
(``checker.engines.invariant``). It is ``sat`` when a bad state or step is reachable; the
shortest, canonical counterexample then comes from BMC. The invariant is only a
candidate until ``checker.engines.certify`` has checked it with plain queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from checker import interrupt
from checker.engines.encode import Encoding
from checker.engines.invariant import Invariant, NotAClause, from_z3
from checker.engines.smt import SEED, Answer, Budget
from checker.model import Kind, Property


@dataclass(frozen=True)
class SpacerResult:
    #: UNSAT: the property holds (with ``invariant``); SAT: it is violated
    answer: Answer
    invariant: Invariant | None = None
    #: length of Spacer's own counterexample (not necessarily the shortest)
    trace_length: int | None = None
    reason: str = ""


def prove(enc: Encoding, prop: Property, budget: Budget) -> SpacerResult:
    """Decide ``prop`` with Spacer."""
    step = enc.transition(0)
    s, t = step.before, step.after
    xs, ys = s.variables(), t.variables()

    fp = z3.Fixedpoint(ctx=enc.context)
    fp.set(engine="spacer")
    fp.set("spacer.random_seed", SEED)
    fp.set("rlimit", budget.rlimit)
    boolean = z3.BoolSort(ctx=enc.context)
    inv = z3.Function("Inv", *(x.sort() for x in xs), boolean)
    err = z3.Function("Err", boolean)
    fp.register_relation(inv, err)
    fp.declare_var(*xs, *ys, *step.local)
    fp.rule(inv(*xs), enc.init(s), name="init")
    fp.rule(inv(*ys), [inv(*xs), step.formula], name="step")
    if prop.kind is Kind.STATE:
        fp.rule(err(), [inv(*xs), enc.bad_state(prop, s)], name="bad")
    else:
        fp.rule(err(), [inv(*xs), step.formula, enc.bad_step(prop, step)], name="bad")

    # Ctrl-C during the query raises Interrupted on leaving the block: a canceled
    # query is not an answer
    failure: str | None = None
    with interrupt.solving(enc.context):
        try:
            result = fp.query(err())
        except z3.Z3Exception as exc:
            # Spacer reports an exhausted rlimit by raising, not by answering unknown
            failure = _message(exc)
    if failure is not None:
        return SpacerResult(Answer.UNKNOWN, reason=f"spacer: {failure}")
    if result == z3.unsat:
        # Var(i) in the cover is Inv's i-th argument
        body = z3.substitute_vars(fp.get_cover_delta(-1, inv), *xs)
        try:
            return SpacerResult(Answer.UNSAT, invariant=from_z3(body, s))
        except NotAClause as exc:
            return SpacerResult(Answer.UNKNOWN, reason=f"spacer invariant not usable: {exc}")
    if result == z3.sat:
        names = fp.get_rule_names_along_trace()
        return SpacerResult(Answer.SAT, trace_length=sum(1 for n in names if n == "step"))
    return SpacerResult(Answer.UNKNOWN, reason=f"spacer: {fp.reason_unknown()}")


def _message(exc: z3.Z3Exception) -> str:
    value = exc.value
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
