"""The z3 transition relation: its action vocabulary is exact and no operation is dead.

(Its agreement with the step function, the explicit successors and the parametric
encoding is ``tests/test_agreement.py``; the strategies for random rules and path
policies defined here are shared with it.)
"""

from __future__ import annotations

import pytest
import z3
from hypothesis import Phase, settings
from hypothesis import strategies as st

from checker.engines import semantics
from checker.engines.encode import Encoding
from checker.engines.smt import Answer, Budget, check, new_solver
from checker.model import (
    SPTE_FIELDS,
    Paths,
    System,
)
from checker.model.paths import CHOICES
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

#: any Paths: every choice (checker.model.paths.CHOICES) drawn independently, the MMU
#: among them
paths_strategy = st.builds(
    Paths,
    **{
        name: st.booleans() if kind is bool else st.sampled_from(list(kind))  # type: ignore[call-overload]
        for name, kind in CHOICES.items()
    },
)


# Shrinking is off: each example costs ~40 ms of solver time, so shrinking a failure
# would run into Hypothesis' five-minute cap; the failing state and formula are
# small enough to read as drawn, and the assertion names the action.
NO_SHRINK = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate))


def test_no_action_outside_the_operations_is_possible() -> None:
    """Op codes past the last operation and vCPUs past the last one are excluded."""
    enc = Encoding(System(adhoc_rule(RULE_TEXTS["new"])), 3)
    step = enc.transition(0)
    solver = new_solver(Budget())
    solver.add(step.formula)
    # widen first: comparing with 2**bits on the narrow vector would wrap to 0
    op, vcpu = z3.ZeroExt(8, step.action.op), z3.ZeroExt(8, step.action.vcpu)
    operations = enc.model.operations
    out_of_range = z3.Or(z3.UGE(op, len(operations)), z3.UGE(vcpu, 3))
    assert len(operations) <= 1 << enc.op_bits
    assert check(solver) is Answer.SAT
    lit = z3.Bool("oob")
    solver.add(z3.Implies(lit, out_of_range))
    assert check(solver, lit) is Answer.UNSAT


@pytest.mark.parametrize(("era", "vcpus"), [(None, 2), ("v5.17", 1)])
def test_every_operation_can_fire_from_some_reachable_state(era: str | None, vcpus: int) -> None:
    """Guards against an encoding (or model) in which an operation is dead (v5.17's
    TDP MMU: the two-step aging and PML)."""
    paths = Paths()
    if era is not None:
        from checker.model.paths import Mmu
        from checker.rules.specs import load_eras

        from .conftest import SPECS

        paths = load_eras(SPECS)[era].paths[Mmu.TDP]
    system = System(adhoc_rule(RULE_TEXTS["new"]), paths)
    seen_ops: set[str] = set()
    frontier = list(semantics.initial_states(vcpus, system.shape, system.model))
    visited = set(frontier)
    while frontier:
        state = frontier.pop()
        for s in semantics.successors(system, state):
            seen_ops.add(s.action.op)
            if s.after not in visited:
                visited.add(s.after)
                frontier.append(s.after)
    assert seen_ops == {op.name for op in system.model.operations}
