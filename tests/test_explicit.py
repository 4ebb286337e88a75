"""The explicit engine: symmetry reduction, exact state counts, concrete shortest traces."""

from __future__ import annotations

import dataclasses

import pytest

from checker.engines import explicit, semantics
from checker.model import PROPERTY_BY_NAME, Actor, System, Tlb
from checker.model.paths import Mmu
from checker.model.vocabulary import evolve


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


def test_evolve_is_replace_and_leaves_no_kept_hash_behind() -> None:
    """The engine's fast ``replace`` builds the record ``dataclasses.replace`` builds,
    and a hash kept on the original (``cached_hash``) is not the copy's."""
    state = semantics.initial_states(2)[0]
    hash(state), hash(state.shared)  # keep their hashes
    changed = with_tlbs(state, (Tlb.WRITABLE, Tlb.NONE))
    assert changed == dataclasses.replace(state, vcpus=changed.vcpus) != state
    assert hash(changed) == hash(dataclasses.replace(state, vcpus=changed.vcpus))
    slot = evolve(state.shared.slot, dirty_logging=True)
    shared = evolve(state.shared, slot=slot)
    assert shared == dataclasses.replace(state.shared, slot=slot)
    assert hash(shared) == hash(dataclasses.replace(state.shared, slot=slot)) != hash(state.shared)
    with pytest.raises(TypeError, match="no field nope"):
        evolve(state.shared, nope=True)


@pytest.mark.slow  # every action from every reachable state, twice: about 20 s
@pytest.mark.parametrize("model", ["aging", "locking"])
def test_the_stepper_memoises_what_the_step_function_says(model: str) -> None:
    """Every memoised answer (outcome, lock availability, step property) is the step
    function's own, across every reachable state of a model that holds mmu_lock
    across steps: for write (the TDP MMU's two-step aging), and for read too (the
    agreement tests' model with sections of both kinds)."""
    from pathlib import Path

    from checker.model import PROPERTIES, Kind
    from checker.rules.specs import adhoc_rule, load_eras, load_rules

    from .test_agreement import LOCKING

    specs = Path(__file__).resolve().parent.parent / "specs"
    if model == "aging":
        paths = load_eras(specs)["v5.15-v5.16"].paths[Mmu.TDP]
        system = System(load_rules(specs)["legacy"], paths)
    else:
        system = System(adhoc_rule("!is_writable_pte(new_spte)"), model=LOCKING)
    stepper = explicit.Stepper(system)
    explored, _ = explicit.explore(system, 2, stepper=stepper)
    assert stepper._moves and any(stepper.model.locals)
    for state in explored.parent:
        for action in semantics.actions(2, state.shape, system.model):
            want, got = semantics.step(system, state, action), stepper.step(state, action)
            assert (want is None) == (got is None), action.label
            if want is None or got is None:
                continue
            assert got.after == want.after
            for prop in PROPERTIES:
                if prop.kind is Kind.STEP:
                    assert stepper.violates(prop, got) == semantics.step_is_bad(prop, want)


def test_lock_availability_is_kept_per_lock_mode() -> None:
    """With a host thread holding mmu_lock for read, a reader may take it and a
    writer may not, whichever the stepper is asked about first."""
    from checker.model import LockMode
    from checker.model.operation import HOLDS_READ
    from checker.rules.specs import adhoc_rule

    from .test_agreement import LOCKING

    system = System(adhoc_rule("!is_writable_pte(new_spte)"), model=LOCKING)
    state = semantics.initial_states(1, system.shape, system.model)[0]
    held = [x.name == HOLDS_READ.name for x in system.model.locals]
    host = dataclasses.replace(state.shared.hosts[0], local=tuple(held))
    state = dataclasses.replace(state, shared=dataclasses.replace(state.shared, hosts=(host,)))
    reader = next(op for op in system.model.operations if op.lock is LockMode.READ)
    writer = next(op for op in system.model.operations if op.lock is LockMode.WRITE)
    for order in ((reader, writer), (writer, reader)):
        stepper = explicit.Stepper(system)
        for op in order:
            want = semantics.available(system.model, op, state)
            assert stepper._available(op, state) == want == (op is reader)


def test_a_pickled_state_keeps_no_hash_of_this_process() -> None:
    """States and their model cross processes pickled (the forked engines' answers):
    the hashes kept on them are left behind, and the copy's are its own."""
    import pickle

    state = semantics.initial_states(2)[0]
    hash(state), hash(state.shared), hash(state.vcpus[0]), hash(state.model)
    for record in (state, state.shared, state.vcpus[0], state.model):
        assert "_hash" in record.__dict__
        copy = pickle.loads(pickle.dumps(record))
        assert copy == record and hash(copy) == hash(record)
    for record in (state, state.shared, state.vcpus[0]):
        assert "_hash" not in pickle.loads(pickle.dumps(record)).__dict__
