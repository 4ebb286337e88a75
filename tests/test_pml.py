"""The dirty state in the TLB, dirty logging by Dirty bits (PML), and the TDP MMU's
two-step aging before ba3a6120a4e7, through the step function; and the engines'
agreement on a PML era."""

from __future__ import annotations

import dataclasses

import pytest

from checker.engines import semantics
from checker.engines.semantics import Action, State
from checker.model import PROPERTY_BY_NAME, Paths, Shape, System, Tlb
from checker.model.declaration import model_for
from checker.model.paths import EnableFlush, Mmu
from checker.rules.specs import load_eras, load_rules

from .conftest import SPECS

ERAS = load_eras(SPECS)
#: the last era whose TDP MMU stores SPTEs with plain writes, and the first with XCHG
PLAIN = ERAS["v5.17"].paths[Mmu.TDP]
ATOMIC = ERAS["v5.18-v5.19"].paths[Mmu.TDP]
PML_SHADOW = ERAS["v6.4-v6.12"].paths[Mmu.SHADOW]


SYSTEM_RULE = load_rules(SPECS)["new"]


def system(shipped: dict[str, System], paths: Paths) -> System:
    return System(shipped["new"].rule, paths)


def start(sys: System, ad: bool, pml: bool, vcpus: int = 1) -> State:
    for state in semantics.initial_states(vcpus, sys.shape, sys.model):
        slot = state.shared.slot
        if (slot.ad_enabled, slot.pml) == (ad, pml):
            return state
    raise AssertionError(f"no initial state with ad={ad}, pml={pml}")


def act(op: str, vcpu: int | None = None, **params: bool) -> Action:
    return Action(op, vcpu, tuple(params.items()))


FAULT = act("page_fault", 0, host_writable=True, write_fault=False)
ENABLE = act("enable_dirty_logging", initially_set=False)


def run(sys: System, state: State, *actions: Action) -> State:
    for action in actions:
        s = semantics.step(sys, state, action)
        assert s is not None, f"{action.label} not enabled in {state}"
        state = s.after
    return state


def test_configurations_pml_needs_ad_bits_and_an_era_with_it() -> None:
    assert model_for(PLAIN).configurations() == (
        {"ad_enabled": False, "pml": False},
        {"ad_enabled": True, "pml": False},
        {"ad_enabled": True, "pml": True},
    )
    assert len(model_for(ERAS["v3.x"].paths[Mmu.SHADOW]).configurations()) == 2
    assert all(e.paths[m].pml for e in ERAS.values() if e.first >= (4, 4) for m in e.paths)


def test_a_walk_caches_the_dirty_state_with_ad_bits_only(systems: dict[str, System]) -> None:
    sys = system(systems, PML_SHADOW)
    # a fault builds a writable SPTE with Dirty set (A/D bits): the walk caches it
    assert run(sys, start(sys, True, False), FAULT, act("guest_access", 0)).tlb(0) is Tlb.DIRTY
    assert run(sys, start(sys, False, False), FAULT, act("guest_access", 0)).tlb(0) is Tlb.WRITABLE


def test_a_write_through_a_dirty_cached_entry_leaves_the_spte(systems: dict[str, System]) -> None:
    sys = system(systems, PML_SHADOW)
    cached = run(sys, start(sys, True, True), FAULT, act("guest_access", 0), ENABLE)
    assert cached.tlb(0) is Tlb.DIRTY and not cached.shared.sptes[0].dirty
    # the entry survives because the enable's flush is still pending
    step = semantics.step(sys, cached, act("guest_write", 0))
    assert step is not None
    assert step.after.shared == cached.shared
    assert step.after.tlb(0) is Tlb.DIRTY


def test_a_write_through_a_clean_entry_sets_dirty_or_faults(systems: dict[str, System]) -> None:
    sys = system(systems, PML_SHADOW)
    # logging on by Dirty bits: the enable cleared D and flushed, the walk caches clean
    clean = run(
        sys,
        start(sys, True, True),
        FAULT,
        ENABLE,
        act("enable_flush"),
        act("guest_access", 0),
    )
    assert clean.tlb(0) is Tlb.WRITABLE and not clean.shared.frames[0].dirty_bit
    wrote = semantics.step(sys, clean, act("guest_write", 0))
    assert wrote is not None
    assert wrote.after.shared.sptes[0].dirty and wrote.after.tlb(0) is Tlb.DIRTY
    # the CPU's setting of Dirty logged the gfn (PML): the store is recorded
    assert wrote.after.shared.frames[0].dirty_bit
    assert not semantics.step_is_bad(PROPERTY_BY_NAME["dirty_log"], wrote)
    # an SPTE that is no longer writable: the locked update faults, no silent store
    spte = dataclasses.replace(clean.shared.sptes[0], writable=False)
    shared = dataclasses.replace(clean.shared, sptes=(spte,))
    assert (
        semantics.step(sys, dataclasses.replace(clean, shared=shared), act("guest_write", 0))
        is None
    )


def test_pml_enable_and_harvest_clear_dirty_not_writable(systems: dict[str, System]) -> None:
    sys = system(systems, PML_SHADOW)
    enabled = run(sys, start(sys, True, True), FAULT, ENABLE)
    spte = enabled.shared.sptes[0]
    assert spte.writable and not spte.dirty and enabled.shared.slot.enable_flush_pending
    logged = run(sys, enabled, act("enable_flush"), act("guest_access", 0), act("guest_write", 0))
    assert logged.shared.frames[0].dirty_bit and logged.shared.sptes[0].dirty
    harvested = run(sys, logged, act("harvest"))
    spte = harvested.shared.sptes[0]
    assert spte.writable and not spte.dirty and not harvested.shared.frames[0].dirty_bit
    # flushed after unlock, because it reaped
    assert harvested.shared.slot.harvest_flush_pending
    assert run(sys, harvested, act("harvest_flush")).tlb(0) is Tlb.NONE


def test_the_tdp_enable_flush_before_v6_0_is_owed_iff_a_dirty_bit_was_cleared(
    systems: dict[str, System],
) -> None:
    assert PLAIN.enable_flush is EnableFlush.CHANGED
    sys = system(systems, PLAIN)
    dirty = run(sys, start(sys, True, True), FAULT, ENABLE)
    assert dirty.shared.slot.enable_flush_pending  # the fault's SPTE had Dirty set
    again = run(sys, dirty, act("enable_flush"), act("disable_dirty_logging"), ENABLE)
    assert not again.shared.slot.enable_flush_pending  # no Dirty bit left to clear


def test_two_step_aging_exists_only_before_the_fix() -> None:
    names = [op.name for op in model_for(PLAIN).operations]
    assert "aging_store" in names
    assert "aging_store" not in [op.name for op in model_for(ATOMIC).operations]
    assert "aging_store" not in [op.name for op in model_for(PML_SHADOW).operations]
    with pytest.raises(ValueError, match="one gfn"):
        System(SYSTEM_RULE, PLAIN, Shape(gfns=2))


def test_two_step_aging_loses_a_dirty_bit_the_cpu_set(systems: dict[str, System]) -> None:
    """ba3a6120a4e7's race: aging reads D = 0, the guest's write sets it, aging's plain
    store clears it, so enabling logging by Dirty bits finds nothing to clear and
    (before v6.0) does not flush: the next write through the dirty-cached entry is
    not logged."""
    sys = system(systems, PLAIN)
    prop = PROPERTY_BY_NAME["dirty_log"]
    # a writable SPTE with Dirty clear, a vCPU caching it writable and clean
    ready = run(
        sys,
        start(sys, True, True),
        FAULT,
        ENABLE,
        act("enable_flush"),
        act("disable_dirty_logging"),
        act("guest_access", 0),
    )
    spte = ready.shared.sptes[0]
    assert spte.writable and not spte.dirty and ready.tlb(0) is Tlb.WRITABLE
    read = run(sys, ready, act("aging"))  # takes mmu_lock for write, reads D = 0
    assert ready.model.by_name("aging").hold.value == "acquire"
    # the lock keeps every other writer out between the read and the store
    assert semantics.step(sys, read, ENABLE) is None
    wrote = run(sys, read, act("guest_write", 0))  # the CPU sets D, caches dirty
    assert wrote.shared.sptes[0].dirty and wrote.tlb(0) is Tlb.DIRTY
    stored = run(sys, wrote, act("aging_store"))  # the plain store: D = 0 again
    assert not stored.shared.sptes[0].dirty and not stored.shared.sptes[0].accessed
    enabled = run(sys, stored, ENABLE)
    assert not enabled.shared.slot.enable_flush_pending and enabled.tlb(0) is Tlb.DIRTY
    lost = semantics.step(sys, enabled, act("guest_write", 0))
    assert lost is not None and semantics.step_is_bad(prop, lost)


def test_one_step_aging_after_the_fix_keeps_the_dirty_bit(systems: dict[str, System]) -> None:
    sys = system(systems, ATOMIC)
    ready = run(
        sys,
        start(sys, True, True),
        FAULT,
        ENABLE,
        act("enable_flush"),
        act("disable_dirty_logging"),
        act("guest_access", 0),
        act("guest_write", 0),
        act("aging"),
    )
    assert ready.shared.sptes[0].dirty and not ready.shared.sptes[0].accessed
    assert run(sys, ready, ENABLE).shared.slot.enable_flush_pending


@pytest.mark.parametrize("paths", [PLAIN, PML_SHADOW], ids=["v5.17-tdp", "v6.4-v6.12-shadow"])
def test_the_engines_agree_on_a_pml_era(paths: Paths, systems: dict[str, System]) -> None:
    """The explicit engine's reachable states and the SMT relation (BMC) agree on
    which properties are violated, on an era with PML and (v5.17) the two-step
    aging, with 1 vCPU."""
    from checker.engines import bmc, explicit
    from checker.engines.encode import Encoding
    from checker.engines.smt import Budget

    sys = system(systems, paths)
    props = [PROPERTY_BY_NAME["dirty_log"], PROPERTY_BY_NAME["stale_w"]]
    found = explicit.check_all(sys, props, 1)
    for prop in props:
        by_explicit = found[prop.name]
        by_bmc = bmc.shortest_counterexample(Encoding(sys, 1), prop, 12, Budget())
        assert by_explicit.violated == (by_bmc.trace is not None), prop.name
        if by_bmc.trace is not None:
            assert len(by_bmc.trace.actions) == len(by_explicit.actions), prop.name


def test_the_interpretations_agree_on_reachable_states_of_the_two_step_aging(
    systems: dict[str, System],
) -> None:
    """The step function, the SMT relation and the parametric step agree, action by
    action, on reachable states of v5.17's TDP MMU with PML, among them states where
    the host holds mmu_lock between aging's read and its store."""
    from checker.engines import explicit

    from .test_agreement import Harness, agree

    sys = system(systems, PLAIN)
    explored, _ = explicit.explore(sys, 2, symmetric=False)
    reached = sorted(explored.parent)
    held = [s for s in reached if s.lock_holders()]
    pml = [s for s in reached if s.shared.slot.pml and s.tlbs().count(Tlb.DIRTY)]
    assert held and pml
    sample = {*reached[:: max(1, len(reached) // 8)], *held[:4], *pml[:4]}
    h = Harness(sys, 2)
    for state in sorted(sample):
        agree(h, state)
