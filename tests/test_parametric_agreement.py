"""The "every number of vCPUs" encoding agrees with the step function at N = 1, 2, 3.

``checker.engines.parametric`` writes one step over an uninterpreted vCPU sort, with its own
per-vCPU TLB successor. Here that sort is made finite: N distinct constants
``vcpu0 .. vcpu{N-1}`` and the axiom that every vCPU is one of them. For an
arbitrary concrete state (reachable or not) and every action of the step function
(operation, actor, parameters), under shipped and random rules and every path
policy:

* the operation's step constraint with the state, actor and parameters fixed is
  satisfiable iff the step function enables the action, and its successor (``g1``
  and every vCPU's entry after the step) is the step function's, and the only one;
* the whole step (the disjunction consecution uses, actor and parameters free) has
  exactly the step function's successors;
* the bad predicates the certificate uses (a Skolem culprit for state properties,
  the chosen operation's bad step for step properties) agree with
  ``semantics.state_is_bad`` / ``step_is_bad``.

The z3 transition relation (``checker.engines.encode``) at the same N is compared on the
same states and actions, so that each of the three interpretations is checked
against the others; the planted-bug tests at the end show that a one-operation
change in any one of them is caught.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines import encode, parametric, semantics
from checker.engines.encode import Encoding
from checker.engines.parametric import AllVcpus
from checker.engines.smt import SEED, Budget, new_solver
from checker.model import (
    GFN_FIELDS,
    OPERATION_BY_NAME,
    OPERATIONS,
    PROPERTIES,
    SPTE_FIELDS,
    Gfn,
    Kind,
    Outcome,
    Paths,
    Spte,
    System,
    Tlb,
    TlbEntry,
)
from checker.rules import formula as F
from checker.rules.specs import adhoc_rule

from .test_encode import NO_SHRINK, RULE_TEXTS, FormulaRule, formulas, paths_strategy

VCPU_COUNTS = (1, 2, 3)

# An example checks every action (38 at N = 3) with two or three queries each, in
# both encodings: 0.1 to 0.2 s. CI runs more.
EXAMPLES = 50 if os.environ.get("CI") else 25
AGREEMENT = settings(NO_SHRINK, max_examples=EXAMPLES)


def states(n: int) -> st.SearchStrategy[semantics.State]:
    return st.builds(
        lambda spte, gfn, tlbs: semantics.State(Gfn(spte=Spte(*spte), **gfn), tuple(tlbs)),
        st.tuples(*(st.booleans() for _ in SPTE_FIELDS)),
        st.fixed_dictionaries({f: st.booleans() for f in GFN_FIELDS}),
        st.lists(st.sampled_from(list(Tlb)), min_size=n, max_size=n),
    )


sized_states = st.sampled_from(VCPU_COUNTS).flatmap(states)


class Harness:
    """The parametric step of ``system`` (its own fresh z3 context, as in
    ``checker.engines.parametric``) over a domain of exactly ``n`` vCPUs, and the z3
    transition relation with ``n`` vCPUs in that same context."""

    def __init__(self, system: System, n: int) -> None:
        self.system, self.n = system, n
        self.allv = allv = AllVcpus(system)
        ctx = allv.vocab.ctx
        self.vcpus = [allv.vocab.vcpu(f"vcpu{i}") for i in range(n)]
        x = allv.vocab.vcpu("x")
        self.solver = z3.Solver(ctx=ctx)
        self.solver.set("random_seed", SEED)
        if n > 1:
            self.solver.add(z3.Distinct(*self.vcpus))
        self.solver.add(z3.ForAll([x], z3.Or(*(x == v for v in self.vcpus))))
        self.enc = Encoding(system, n, context=ctx)
        self.enc_step = self.enc.transition(0)
        self.enc_solver = new_solver(Budget(), ctx)
        self.enc_solver.add(self.enc_step.formula)

    # -- the parametric vocabulary at concrete values
    def state_is(self, state: semantics.State) -> z3.BoolRef:
        g0, tlb0 = self.allv.g0, self.allv.tlb0
        lits = [_gfn_is(g0, state.gfn)]
        for v, t in zip(self.vcpus, state.tlbs, strict=True):
            entry = t.entry()
            lits += [tlb0[0](v) == entry.cached, tlb0[1](v) == entry.writable]
        return z3.And(*lits)

    def after(self) -> list[TlbEntry[z3.BoolRef]]:
        return [self.allv.after(v) for v in self.vcpus]

    def successor_is(self, state: semantics.State) -> z3.BoolRef:
        lits = [_gfn_is(self.allv.g1, state.gfn)]
        for sym, t in zip(self.after(), state.tlbs, strict=True):
            entry = t.entry()
            lits += [sym.cached == entry.cached, sym.writable == entry.writable]
        return z3.And(*lits)

    def successor(self, model: z3.ModelRef) -> semantics.State:
        def val(x: z3.BoolRef) -> bool:
            return bool(z3.is_true(model.eval(x, model_completion=True)))

        g1 = self.allv.g1
        spte = Spte(**{f: val(getattr(g1.spte, f)) for f in SPTE_FIELDS})
        gfn = Gfn(spte=spte, **{f: val(getattr(g1, f)) for f in GFN_FIELDS})
        tlbs = tuple(Tlb.of(TlbEntry(val(t.cached), val(t.writable))) for t in self.after())
        return semantics.State(gfn, tlbs)

    def action_is(self, action: semantics.Action) -> z3.BoolRef:
        """The operation's step constraint (false if the encoding has no such
        operation), with its actor and parameters fixed; the vCPU of a vCPU-less
        operation and parameters the operation ignores stay free."""
        allv = self.allv
        chosen = [c for op, _, c in allv.operations if op.name == action.op]
        lits = [z3.Or(*chosen) if chosen else allv.vocab.logic.false]
        if action.vcpu is not None:
            lits.append(allv.actor == self.vcpus[action.vcpu])
        lits += [allv.params[p] == value for p, value in action.params]
        return z3.And(*lits)


_HARNESSES: dict[tuple[object, Paths, int], Harness] = {}


def _harness(key: object, rule: object, paths: Paths, n: int) -> Harness:
    if (key, paths, n) not in _HARNESSES:
        _HARNESSES[key, paths, n] = Harness(System(rule, paths), n)  # type: ignore[arg-type]
    return _HARNESSES[key, paths, n]


def _gfn_is(sym: Gfn[z3.BoolRef], gfn: Gfn[bool]) -> z3.BoolRef:
    return z3.And(
        *(getattr(sym.spte, f) == getattr(gfn.spte, f) for f in SPTE_FIELDS),
        *(getattr(sym, f) == getattr(gfn, f) for f in GFN_FIELDS),
    )


def _sat(solver: z3.Solver, *constraints: z3.BoolRef) -> bool:
    solver.push()
    try:
        solver.add(*constraints)
        result = solver.check()
        assert result != z3.unknown, solver.reason_unknown()
        return bool(result == z3.sat)
    finally:
        solver.pop()


class Scope:
    """``solver.push()`` ... ``pop()`` as a context manager."""

    def __init__(self, solver: z3.Solver) -> None:
        self.solver = solver

    def __enter__(self) -> z3.Solver:
        self.solver.push()
        return self.solver

    def __exit__(self, *exc: object) -> None:
        self.solver.pop()


def disagreements(h: Harness, state: semantics.State) -> Iterator[str]:
    """Every disagreement between the step function, the parametric step at
    ``h.n`` vCPUs and the z3 transition relation on ``state``, as it is found."""
    system = h.system
    expected = {a: semantics.step(system, state, a) for a in semantics.actions(h.n)}
    yield from _parametric(h, state, expected)
    yield from _encoded(h, state, expected)


def _parametric(
    h: Harness, state: semantics.State, expected: dict[semantics.Action, semantics.Step | None]
) -> Iterator[str]:
    allv = h.allv
    with Scope(h.solver) as solver:
        solver.add(h.state_is(state))
        for action, step in expected.items():
            op = OPERATION_BY_NAME[action.op]
            with Scope(solver):
                solver.add(h.action_is(action))
                result = solver.check()
                assert result != z3.unknown, solver.reason_unknown()
                if step is None:
                    if result == z3.sat:
                        yield f"parametric: {action.label} enabled, not in Python, from {state}"
                    continue
                if result != z3.sat:
                    yield f"parametric: {action.label} enabled in Python only, from {state}"
                    continue
                model = solver.model()
                got = h.successor(model)
                if got != step.after:
                    yield f"parametric: {action.label} from {state}: {got} != {step.after}"
                    continue
                for prop in PROPERTIES:
                    if prop.kind is Kind.STEP:
                        bad = model.eval(allv.bad_step(prop, op), model_completion=True)
                        if z3.is_true(bad) != semantics.step_is_bad(prop, step):
                            yield f"parametric: {prop.name} on {action.label} from {state}"
                if _sat(solver, z3.Not(h.successor_is(step.after))):
                    yield f"parametric: {action.label} from {state}: successor not unique"
        # the whole step, as consecution and safety use it: the same successors
        steps = [s for s in expected.values() if s is not None]
        solver.add(allv.step)
        afters = sorted({s.after for s in steps})
        if _sat(solver, *(z3.Not(h.successor_is(after)) for after in afters)):
            yield f"parametric: the step has a successor Python has not, from {state}"
        for after in afters:
            if not _sat(solver, h.successor_is(after)):
                yield f"parametric: the step misses {after}, from {state}"
        for prop in PROPERTIES:
            if prop.kind is Kind.STEP:
                if _sat(solver, allv.bad_step(prop)) != any(
                    semantics.step_is_bad(prop, s) for s in steps
                ):
                    yield f"parametric: {prop.name} on some step from {state}"
            else:
                if _sat(solver, allv.bad_state(prop)) != semantics.state_is_bad(prop, state):
                    yield f"parametric: {prop.name} in {state}"


def _encoded(
    h: Harness, state: semantics.State, expected: dict[semantics.Action, semantics.Step | None]
) -> Iterator[str]:
    enc, step = h.enc, h.enc_step
    with Scope(h.enc_solver) as solver:
        solver.add(enc.state_is(step.before, state))
        for action, want in expected.items():
            with Scope(solver):
                solver.add(enc.action_is(step.action, action))
                result = solver.check()
                assert result != z3.unknown, solver.reason_unknown()
                if (result == z3.sat) != (want is not None):
                    yield f"encode: {action.label} enabled in one only, from {state}"
                    continue
                if want is None:
                    continue
                got = enc.decode_state(solver.model(), step.after)
                if got != want.after:
                    yield f"encode: {action.label} from {state}: {got} != {want.after}"
                elif _sat(solver, z3.Not(enc.state_is(step.after, want.after))):
                    yield f"encode: {action.label} from {state}: successor not unique"


def _agree(h: Harness, state: semantics.State) -> None:
    found = list(disagreements(h, state))
    assert not found, "\n".join(found)


@AGREEMENT
@given(
    rule_name=st.sampled_from(sorted(RULE_TEXTS)),
    paths=st.one_of(st.just(Paths()), paths_strategy),
    state=sized_states,
)
def test_parametric_step_agrees_for_shipped_rules_and_every_path_policy(
    rule_name: str, paths: Paths, state: semantics.State
) -> None:
    rule = adhoc_rule(RULE_TEXTS[rule_name], rule_name)
    _agree(_harness(rule_name, rule, paths, state.vcpus), state)


@AGREEMENT
@given(f=formulas, state=sized_states)
def test_parametric_step_agrees_for_random_rules(f: F.Formula, state: semantics.State) -> None:
    _agree(_harness(f, FormulaRule(f), Paths(), state.vcpus), state)


def test_the_parametric_step_has_every_operation_once() -> None:
    allv = AllVcpus(System(adhoc_rule(RULE_TEXTS["new"])))
    assert [op for op, _, _ in allv.operations] == list(OPERATIONS)


# --- planted bugs: a one-operation change in one interpretation is caught ------------


def _planted_states(n: int, count: int = 40) -> list[semantics.State]:
    """A fixed sample of arbitrary states (seeded), the initial ones first."""
    rng = random.Random(n)
    found = list(semantics.initial_states(n))
    while len(found) < count:
        spte = Spte(*(rng.random() < 0.5 for _ in SPTE_FIELDS))
        gfn = Gfn(spte=spte, **{f: rng.random() < 0.5 for f in GFN_FIELDS})
        found.append(semantics.State(gfn, tuple(rng.choice(list(Tlb)) for _ in range(n))))
    return found


def _first_disagreement(system: System, n: int) -> tuple[int, semantics.State, str] | None:
    """The first disagreement on the planted states: after how many states, on
    which, and what."""
    h = Harness(system, n)
    for i, state in enumerate(_planted_states(n)):
        for found in disagreements(h, state):
            return i + 1, state, found
    return None


Apply = Callable[..., Outcome[Any]]


def _planted_apply(real: Apply, op_name: str, change: str) -> Apply:
    """``apply`` with ``op_name`` changed: ``drop`` never enables it, ``flush`` inverts
    its flush, ``keep_writable`` leaves the SPTE's W bit as it was."""

    def planted(logic: Any, system: System, op: Any, gfn: Gfn[Any], *rest: Any) -> Outcome[Any]:
        out = real(logic, system, op, gfn, *rest)
        if op.name != op_name:
            return out
        if change == "drop":
            return dataclasses.replace(out, enabled=logic.const(False))
        if change == "flush":
            return dataclasses.replace(out, flush=logic.not_(out.flush))
        assert change == "keep_writable"
        spte = dataclasses.replace(out.gfn.spte, writable=gfn.spte.writable)
        return dataclasses.replace(out, gfn=dataclasses.replace(out.gfn, spte=spte))

    return planted


def _flipped_after(self: AllVcpus, w: z3.ExprRef) -> TlbEntry[z3.BoolRef]:
    """The TLB successor with the actor's new entry given to every other vCPU."""
    kept = TlbEntry(cached=self.tlb0[0](w), writable=self.tlb0[1](w))
    new, flush, actor = self.actor_new, self.flush, self.actor
    return TlbEntry(
        cached=z3.And(z3.Not(flush), z3.If(w != actor, new.cached, kept.cached)),
        writable=z3.And(z3.Not(flush), z3.If(w != actor, new.writable, kept.writable)),
    )


PLANTED: Sequence[tuple[str, str, str, int]] = (
    # (interpretation, operation, change, vCPUs)
    ("parametric", "aging", "remove", 1),
    ("parametric", "aging", "drop", 1),
    ("parametric", "harvest", "flush", 1),
    ("parametric", "sync_spte", "keep_writable", 1),
    ("parametric", "after", "flip", 2),
    ("encode", "aging", "drop", 1),
    ("encode", "prefetch", "keep_writable", 2),
    ("semantics", "aging", "drop", 1),
    ("semantics", "write_protect", "flush", 3),
)


@pytest.mark.parametrize(("where", "op_name", "change", "n"), PLANTED)
def test_a_planted_bug_is_caught(
    where: str, op_name: str, change: str, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = {"parametric": parametric, "encode": encode, "semantics": semantics}[where]
    if change == "flip":
        monkeypatch.setattr(AllVcpus, "after", _flipped_after)
    elif change == "remove":
        kept = tuple(op for op in OPERATIONS if op.name != op_name)
        monkeypatch.setattr(module, "OPERATIONS", kept)
    else:
        monkeypatch.setattr(module, "apply", _planted_apply(module.apply, op_name, change))
    system = System(adhoc_rule(RULE_TEXTS["new"], "new"))
    started = time.perf_counter()
    found = _first_disagreement(system, n)
    elapsed = time.perf_counter() - started
    assert found is not None, f"planted bug in {where} ({op_name}: {change}) not caught"
    states, state, message = found
    assert message.startswith(where) or where == "semantics", message
    assert change == "flip" or f" {op_name}" in message, message
    # the plant, and nothing else, makes that state disagree
    monkeypatch.undo()
    assert not list(disagreements(Harness(system, n), state))
    print(f"\nplanted {where} {op_name} {change}: caught at state {states} in {elapsed:.2f} s")
    print(f"  {message[:150]}")
