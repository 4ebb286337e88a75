"""The z3 transition relation and the Python step function agree on every operation.

For arbitrary states (reachable or not), every action, shipped or random rules and
random paths around them (dirty-log flushes, aging, prefetch):
the action is enabled in Python iff the SMT step is satisfiable, the SMT successor
equals the Python one and is the only one, and every property's bad predicate
gives the same answer in both.
"""

from __future__ import annotations

import z3
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from checker.engines import semantics
from checker.engines.encode import OP_BITS, Encoding
from checker.engines.smt import Answer, Budget, check, new_solver
from checker.model import (
    GFN_FIELDS,
    OPERATIONS,
    PROPERTIES,
    SPTE_FIELDS,
    AgingWithoutAd,
    EnableFlush,
    Gfn,
    HarvestFlush,
    Kind,
    Paths,
    Spte,
    System,
    Tlb,
)
from checker.rules import formula as F
from checker.rules.specs import adhoc_rule

VCPUS = 2

RULE_TEXTS = {
    "old": "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
    "new": "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
    "legacy": "is_writable_pte(old_spte) && !is_writable_pte(new_spte)",
}


class FormulaRule:
    """A rule given directly by a formula (random rules)."""

    def __init__(self, f: F.Formula) -> None:
        self.formula = f

    def decide(self, logic, old, new, ad_enabled):  # type: ignore[no-untyped-def]
        return F.evaluate(self.formula, logic, old, new, ad_enabled)


atoms = st.one_of(
    st.builds(F.Bit, st.sampled_from(["old", "new"]), st.sampled_from(SPTE_FIELDS)),
    st.just(F.AdEnabled()),
    st.booleans().map(F.Const),
)
formulas = st.recursive(
    atoms,
    lambda inner: st.one_of(
        inner.map(F.not_),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: F.and_(*xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: F.or_(*xs)),
    ),
    max_leaves=6,
)

states = st.builds(
    lambda spte, gfn, tlbs: semantics.State(Gfn(spte=Spte(*spte), **gfn), tuple(tlbs)),
    st.tuples(*(st.booleans() for _ in SPTE_FIELDS)),
    st.fixed_dictionaries({f: st.booleans() for f in GFN_FIELDS}),
    st.lists(st.sampled_from(list(Tlb)), min_size=VCPUS, max_size=VCPUS),
)


paths_strategy = st.builds(
    Paths,
    harvest_flush=st.sampled_from(list(HarvestFlush)),
    enable_flush=st.sampled_from(list(EnableFlush)),
    aging_without_ad=st.sampled_from(list(AgingWithoutAd)),
    prefetch_refresh=st.booleans(),
)


class Harness:
    """One encoding and one solver per rule, the transition relation asserted at its
    base. Each example runs in a push/pop scope: retired activation literals
    would pile up and slow every later check, while pop drops them."""

    def __init__(self, rule: object, paths: Paths) -> None:
        self.rule = rule
        self.system = System(rule, paths)  # type: ignore[arg-type]
        self.enc = Encoding(self.system, VCPUS)
        self.solver = new_solver(Budget())
        self.solver.add(self.enc.transition(0).formula)
        self.literals = 0

    def literal(self, constraint: z3.BoolRef) -> z3.BoolRef:
        self.literals += 1
        lit = z3.Bool(f"query{self.literals}")
        self.solver.add(z3.Implies(lit, constraint))
        return lit


_HARNESSES: dict[object, Harness] = {}


def _harness(key: object, rule: object, paths: Paths) -> Harness:
    if (key, paths) not in _HARNESSES:
        _HARNESSES[key, paths] = Harness(rule, paths)
    return _HARNESSES[key, paths]


def _agree(harness: Harness, state: semantics.State) -> None:
    harness.solver.push()
    try:
        _compare(harness, state, [])
    finally:
        harness.solver.pop()


def _compare(h: Harness, state: semantics.State, used: list[z3.BoolRef]) -> None:
    enc, solver, system = h.enc, h.solver, h.system
    step = enc.transition(0)

    def literal(constraint: z3.BoolRef) -> z3.BoolRef:
        used.append(h.literal(constraint))
        return used[-1]

    start = literal(enc.state_is(step.before, state))
    for action in semantics.actions(VCPUS):
        expected = semantics.step(system, state, action)
        chosen = literal(enc.action_is(step.action, action))
        solver.add(z3.Implies(chosen, enc.action_is(step.action, action)))
        answer = check(solver, start, chosen)
        if expected is None:
            assert answer is Answer.UNSAT, f"{action} enabled in SMT only, from {state}"
            continue
        assert answer is Answer.SAT, f"{action} enabled in Python only, from {state}"
        model = solver.model()
        assert enc.decode_state(model, step.after) == expected.after, action
        for prop in PROPERTIES:
            if prop.kind is Kind.STEP:
                smt_bad = z3.is_true(model.eval(enc.bad_step(prop, step), model_completion=True))
                assert smt_bad == semantics.step_is_bad(prop, expected), (prop.name, action)
        other = literal(z3.Not(enc.state_is(step.after, expected.after)))
        assert check(solver, start, chosen, other) is Answer.UNSAT, (
            f"{action}: successor not unique"
        )
    for prop in PROPERTIES:
        if prop.kind is Kind.STATE:
            bad = literal(enc.bad_state(prop, step.before))
            smt_bad = check(solver, start, bad) is Answer.SAT
            assert smt_bad == semantics.state_is_bad(prop, state), prop.name


# Shrinking is off: each example costs ~40 ms of solver time, so shrinking a failure
# would run into Hypothesis' five-minute cap; the failing state and formula are
# small enough to read as drawn, and the assertion names the action.
NO_SHRINK = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate))


@NO_SHRINK
@given(rule_name=st.sampled_from(sorted(RULE_TEXTS)), state=states)
def test_shipped_rules_step_agrees_with_smt(rule_name: str, state: semantics.State) -> None:
    _agree(_harness(rule_name, adhoc_rule(RULE_TEXTS[rule_name], rule_name), Paths()), state)


@NO_SHRINK
@given(rule_name=st.sampled_from(sorted(RULE_TEXTS)), paths=paths_strategy, state=states)
def test_every_path_policy_agrees_with_smt(
    rule_name: str, paths: Paths, state: semantics.State
) -> None:
    _agree(_harness(rule_name, adhoc_rule(RULE_TEXTS[rule_name], rule_name), paths), state)


@NO_SHRINK
@given(f=formulas, state=states)
def test_random_rules_step_agrees_with_smt(f: F.Formula, state: semantics.State) -> None:
    _agree(_harness(f, FormulaRule(f), Paths()), state)


def test_no_action_outside_the_operations_is_possible() -> None:
    """Op codes past the last operation and vCPUs past the last one are excluded."""
    enc = Encoding(System(adhoc_rule(RULE_TEXTS["new"])), 3)
    step = enc.transition(0)
    solver = new_solver(Budget())
    solver.add(step.formula)
    # widen first: comparing with 2**bits on the narrow vector would wrap to 0
    op, vcpu = z3.ZeroExt(8, step.action.op), z3.ZeroExt(8, step.action.vcpu)
    out_of_range = z3.Or(z3.UGE(op, len(OPERATIONS)), z3.UGE(vcpu, 3))
    assert len(OPERATIONS) <= 1 << OP_BITS
    assert check(solver) is Answer.SAT
    lit = z3.Bool("oob")
    solver.add(z3.Implies(lit, out_of_range))
    assert check(solver, lit) is Answer.UNSAT


def test_every_operation_can_fire_from_some_reachable_state() -> None:
    """Guards against an encoding (or model) in which an operation is dead."""
    system = System(adhoc_rule(RULE_TEXTS["new"]))
    seen_ops: set[str] = set()
    frontier = list(semantics.initial_states(2))
    visited = set(frontier)
    while frontier:
        state = frontier.pop()
        for s in semantics.successors(system, state):
            seen_ops.add(s.action.op)
            if s.after not in visited:
                visited.add(s.after)
                frontier.append(s.after)
    assert seen_ops == {op.name for op in OPERATIONS}
