"""The explicit engine: symmetry reduction, exact state counts, concrete shortest traces."""

from __future__ import annotations

import pytest

from checker.engines import explicit, semantics
from checker.model import PROPERTY_BY_NAME, Actor, System, Tlb


def with_tlbs(state: semantics.State, tlbs: tuple[Tlb, ...]) -> semantics.State:
    """``state`` with each vCPU holding the given entry."""
    return semantics.with_vcpus(state, tuple(Actor((t.entry(),), ()) for t in tlbs))


def test_canonical_sorts_tlbs_and_returns_the_permutation() -> None:
    state = semantics.initial_states(3)[0]
    state = with_tlbs(state, (Tlb.WRITABLE, Tlb.NONE, Tlb.READ_ONLY))
    canon, perm = explicit.canonical(state)
    assert canon.tlbs() == (Tlb.NONE, Tlb.READ_ONLY, Tlb.WRITABLE)
    assert [state.tlb(v) for v in perm] == list(canon.tlbs())
    assert explicit.orbit_size(canon) == 6
    assert explicit.orbit_size(with_tlbs(state, (Tlb.NONE,) * 3)) == 1


@pytest.mark.parametrize("vcpus", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_orbit_sizes_count_the_concrete_states_exactly(
    systems: dict[str, System], vcpus: int
) -> None:
    for system in systems.values():
        reduced, _ = explicit.explore(system, vcpus, symmetric=True)
        full, _ = explicit.explore(system, vcpus, symmetric=False)
        assert reduced.raw_states == full.reduced_states == len(full.parent)
        assert reduced.reduced_states <= full.reduced_states
        # and the concrete states are exactly the permutations of the reduced ones
        assert {explicit.canonical(s)[0] for s in full.parent} == set(reduced.parent)


def test_traces_are_concrete_shortest_and_replay(systems: dict[str, System]) -> None:
    result = explicit.check(systems["legacy"], PROPERTY_BY_NAME["stale_w"], 3)
    assert result.violated and result.initial is not None and len(result.actions) == 4
    state = result.initial
    for action in result.actions:
        step = semantics.step(systems["legacy"], state, action)
        assert step is not None, action
        state = step.after
    assert semantics.state_is_bad(PROPERTY_BY_NAME["stale_w"], state)


def test_holding_properties_explore_everything(systems: dict[str, System]) -> None:
    results = explicit.check_all(systems["new"], list(PROPERTY_BY_NAME.values()), 2)
    assert not any(r.violated for r in results.values())
    [exploration] = {id(r.exploration): r.exploration for r in results.values()}.values()
    assert exploration.raw_states == 872


def test_exploration_is_deterministic(systems: dict[str, System]) -> None:
    a, _ = explicit.explore(systems["old"], 2)
    b, _ = explicit.explore(systems["old"], 2)
    assert list(a.parent) == list(b.parent) and a.steps == b.steps


def test_an_exploration_beyond_its_state_budget_is_inconclusive(
    systems: dict[str, System],
) -> None:
    with pytest.raises(explicit.StateBudgetExceeded) as raised:
        explicit.explore(systems["new"], 256, max_states=2000)
    assert raised.value.exit_code == 3
    assert "more than 2,000 states times vCPUs (7 reachable states at 256 vCPUs" in str(
        raised.value
    )
    assert "raise --max-states" in str(raised.value)
    # the budget counts what is stored, times its vCPUs: 2 vCPUs fit in 640 states
    # up to symmetry, a budget of 1,280
    ex, _ = explicit.explore(systems["new"], 2, max_states=1280)
    assert ex.reduced_states == 640
    with pytest.raises(explicit.StateBudgetExceeded):
        explicit.explore(systems["new"], 2, max_states=1279)
