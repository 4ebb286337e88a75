"""The step function against the domain brief, one operation at a time."""

from __future__ import annotations

import dataclasses

import pytest

from checker.engines import semantics
from checker.engines.semantics import Action, State
from checker.model import (
    MODEL,
    PROPERTY_BY_NAME,
    AgingWithoutAd,
    EnableFlush,
    HarvestFlush,
    System,
    Tlb,
)
from checker.model.paths import Prefetch

AD_OFF, AD_ON = semantics.initial_states(2)


def run(system: System, state: State, *actions: Action) -> State:
    for action in actions:
        s = semantics.step(system, state, action)
        assert s is not None, f"{action.label} not enabled in {state}"
        state = s.after
    return state


def fault(vcpu: int = 0, host_writable: bool = True, write_fault: bool = False) -> Action:
    return Action(
        "page_fault", vcpu, (("host_writable", host_writable), ("write_fault", write_fault))
    )


def act(op: str, vcpu: int | None = None) -> Action:
    if op == "enable_dirty_logging":
        # write-protecting every SPTE, not KVM_DIRTY_LOG_INITIALLY_SET
        return Action(op, vcpu, (("initially_set", False),))
    return Action(op, vcpu)


def test_initial_states_differ_only_in_ad_support() -> None:
    assert [s.shared.slot.ad_enabled for s in (AD_OFF, AD_ON)] == [False, True]
    for s in (AD_OFF, AD_ON):
        assert not s.shared.sptes[0].present and s.tlbs() == (Tlb.NONE, Tlb.NONE)


def test_actions_are_every_instance_in_canonical_order() -> None:
    # the declared model: every operation of every era and shape
    per_vcpu = sum(1 << len(op.params) for op in MODEL.operations if op.by_vcpu)
    host = sum(1 << len(op.params) for op in MODEL.operations if not op.by_vcpu)
    for n in (1, 3):
        acts = semantics.actions(n)
        assert len(acts) == per_vcpu * n + host
        assert list(acts) == sorted(acts)
        assert len(set(acts)) == len(acts)


def test_fault_maps_writable_iff_host_writable_and_untracked(
    systems: dict[str, System],
) -> None:
    new = systems["new"]
    spte = run(new, AD_ON, fault()).shared.sptes[0]
    assert (spte.present, spte.writable, spte.mmu_writable, spte.host_writable) == (1, 1, 1, 1)
    assert spte.accessed and spte.dirty
    spte = run(new, AD_ON, fault(host_writable=False)).shared.sptes[0]
    assert (spte.writable, spte.mmu_writable, spte.host_writable) == (0, 0, 0)
    tracked = run(new, AD_ON, act("write_protect", 0), fault()).shared.sptes[0]
    assert (tracked.writable, tracked.mmu_writable, tracked.host_writable) == (0, 0, 1)


def test_host_writability_cannot_change_while_present(systems: dict[str, System]) -> None:
    state = run(systems["new"], AD_ON, fault())
    assert semantics.step(systems["new"], state, fault(host_writable=False)) is None


def test_walk_caches_the_spte_permission(systems: dict[str, System]) -> None:
    new = systems["new"]
    assert semantics.step(new, AD_ON, act("guest_access", 0)) is None  # nothing mapped
    # with A/D bits the fault's SPTE has Dirty set: the walk caches the dirty state
    assert run(new, AD_ON, fault(), act("guest_access", 1)).tlbs() == (Tlb.NONE, Tlb.DIRTY)
    assert run(new, AD_OFF, fault(), act("guest_access", 1)).tlbs() == (Tlb.NONE, Tlb.WRITABLE)
    read_only = run(new, AD_ON, fault(host_writable=False), act("guest_access", 0))
    assert read_only.tlb(0) is Tlb.READ_ONLY


def test_aging_without_ad_bits_clears_w_keeps_mw_and_never_flushes(
    systems: dict[str, System],
) -> None:
    new = systems["new"]
    state = run(new, AD_OFF, fault(), act("guest_access", 0), act("aging"))
    spte = state.shared.sptes[0]
    assert (spte.writable, spte.mmu_writable, spte.access_tracked) == (0, 1, 1)
    assert state.tlb(0) is Tlb.WRITABLE  # stale, tolerated: MW is still set
    with_ad = run(new, AD_ON, fault(), act("aging")).shared.sptes[0]
    assert (with_ad.writable, with_ad.accessed) == (1, 0)


def test_harvest_write_protects_then_flushes_in_a_later_step(
    systems: dict[str, System],
) -> None:
    new = systems["new"]
    state = run(
        new,
        AD_ON,
        act("enable_dirty_logging"),
        act("enable_flush"),
        fault(),
        act("guest_access", 0),
    )
    assert state.shared.frames[0].dirty_bit
    harvested = run(new, state, act("harvest"))
    assert harvested.shared.slot.harvest_flush_pending and not harvested.shared.frames[0].dirty_bit
    assert (harvested.shared.sptes[0].writable, harvested.shared.sptes[0].mmu_writable) == (0, 1)
    # the fill cached the SPTE's Dirty (the fault set it, A/D bits on): rwd, stale
    assert harvested.tlb(0) is Tlb.DIRTY
    flushed = run(new, harvested, act("harvest_flush"))
    assert flushed.tlbs() == (Tlb.NONE, Tlb.NONE) and not flushed.shared.slot.harvest_flush_pending
    # nothing reaped, nothing to harvest
    assert semantics.step(new, flushed, act("harvest")) is None


def test_zap_always_flushes(systems: dict[str, System]) -> None:
    state = run(systems["legacy"], AD_ON, fault(), act("guest_access", 0), act("zap"))
    assert not state.shared.sptes[0].present and state.tlbs() == (Tlb.NONE, Tlb.NONE)


def test_rule_is_consulted_only_on_a_present_spte_that_changes(
    systems: dict[str, System],
) -> None:
    new = systems["new"]
    install = semantics.step(new, AD_ON, fault())
    assert install is not None and not install.outcome.rule_consulted
    state = install.after
    same = semantics.step(new, state, fault())
    assert same is not None and not same.outcome.rule_consulted
    protect = semantics.step(new, state, act("write_protect", 0))
    assert protect is not None and protect.outcome.rule_consulted and protect.outcome.rule_flush


@pytest.mark.parametrize(("rule_name", "stale"), [("legacy", True), ("old", False), ("new", False)])
def test_domain_section_6_race(systems: dict[str, System], rule_name: str, stale: bool) -> None:
    """Writable entry survives aging, tracking clears MW: only legacy skips the flush."""
    system = systems[rule_name]
    state = run(
        system, AD_OFF, fault(), act("guest_access", 1), act("aging"), act("write_protect", 0)
    )
    assert (state.tlb(1) is Tlb.WRITABLE) == stale
    assert semantics.state_is_bad(PROPERTY_BY_NAME["stale_w"], state) == stale
    write = semantics.step(system, state, act("guest_write", 1))
    assert (write is not None) == stale
    if write is not None:
        assert semantics.step_is_bad(PROPERTY_BY_NAME["write_tracking"], write)


def test_old_rule_flushes_a_refresh_that_keeps_mw(systems: dict[str, System]) -> None:
    precision = PROPERTY_BY_NAME["precision"]
    # without A/D bits the refresh access-tracks the SPTE: W cleared, MW kept
    for name, unnecessary in (("old", True), ("new", False)):
        state = run(systems[name], AD_OFF, fault())
        refresh = semantics.step(systems[name], state, act("prefetch", 0))
        assert refresh is not None
        assert (
            refresh.after.shared.sptes[0].mmu_writable
            and not refresh.after.shared.sptes[0].writable
        )
        assert refresh.outcome.flush == unnecessary
        assert semantics.step_is_bad(precision, refresh) == unnecessary


def test_lost_write_needs_logging_on_and_nothing_recorded(systems: dict[str, System]) -> None:
    lost = PROPERTY_BY_NAME["dirty_log"]
    new = systems["new"]
    state = run(new, AD_ON, fault(), act("guest_access", 0))

    def with_slot(**changes: bool) -> State:
        slot = dataclasses.replace(state.shared.slot, **changes)
        return dataclasses.replace(state, shared=dataclasses.replace(state.shared, slot=slot))

    write = semantics.step(new, with_slot(dirty_logging=True), act("guest_write", 0))
    assert write is not None and semantics.step_is_bad(lost, write)
    pending = with_slot(dirty_logging=True, enable_flush_pending=True)
    write = semantics.step(new, pending, act("guest_write", 0))
    assert write is not None and not semantics.step_is_bad(lost, write)


# --- the paths around the rule ---------------------------------------------------------


def _with(system: System, **paths: object) -> System:
    return System(system.rule, dataclasses.replace(system.paths, **paths))


def _harvested(system: System, aged: bool) -> State:
    """A writable TLB entry on vCPU 0, dirty bit set, and (optionally) W already
    cleared by aging, then a harvest."""
    state = run(system, AD_OFF, act("enable_dirty_logging"))
    if state.shared.slot.enable_flush_pending:
        state = run(system, state, act("enable_flush"))
    state = run(system, state, fault(), act("guest_access", 0))
    if aged:
        state = run(system, state, act("aging"))
    return run(system, state, act("harvest"))


@pytest.mark.parametrize(
    ("policy", "aged", "pending", "flushed_now"),
    [
        (HarvestFlush.REAPED, True, True, False),
        (HarvestFlush.CHANGED, False, True, False),
        (HarvestFlush.CHANGED, True, False, False),  # nothing changed: no flush at all
        (HarvestFlush.ALWAYS, True, True, False),
        (HarvestFlush.NEVER, False, False, False),
        (HarvestFlush.LOCKED, True, False, True),
    ],
)
def test_harvest_flush_policies(
    systems: dict[str, System], policy: HarvestFlush, aged: bool, pending: bool, flushed_now: bool
) -> None:
    state = _harvested(_with(systems["new"], harvest_flush=policy), aged)
    assert state.shared.slot.harvest_flush_pending == pending
    assert (state.tlb(0) is Tlb.NONE) == flushed_now


def test_only_an_always_flushing_harvest_runs_with_nothing_reaped(
    systems: dict[str, System],
) -> None:
    for policy in HarvestFlush:
        system = _with(systems["new"], harvest_flush=policy)
        state = run(system, AD_ON, act("enable_dirty_logging"))
        if state.shared.slot.enable_flush_pending:
            state = run(system, state, act("enable_flush"))
        step = semantics.step(system, state, act("harvest"))
        assert (step is not None) == (policy is HarvestFlush.ALWAYS), policy


@pytest.mark.parametrize(
    ("policy", "aged", "pending", "flushed_now"),
    [
        (EnableFlush.ALWAYS, True, True, False),
        (EnableFlush.CHANGED, False, True, False),
        (EnableFlush.CHANGED, True, False, False),  # the bug b64d740ea7dd fixed
        (EnableFlush.MMU_WRITABLE, True, True, False),
        (EnableFlush.NEVER, False, False, False),
        (EnableFlush.LOCKED, True, False, True),
    ],
)
def test_enable_flush_policies(
    systems: dict[str, System], policy: EnableFlush, aged: bool, pending: bool, flushed_now: bool
) -> None:
    system = _with(systems["new"], enable_flush=policy)
    state = run(system, AD_OFF, fault(), act("guest_access", 0))
    if aged:
        state = run(system, state, act("aging"))
    state = run(system, state, act("enable_dirty_logging"))
    assert state.shared.slot.enable_flush_pending == pending
    assert (state.tlb(0) is Tlb.NONE) == flushed_now


def test_aging_without_ad_bits_zaps_in_v3(systems: dict[str, System]) -> None:
    system = _with(systems["legacy"], aging_without_ad=AgingWithoutAd.ZAP)
    state = run(system, AD_OFF, fault(), act("guest_access", 0), act("aging"))
    assert not state.shared.sptes[0].present and state.tlbs() == (Tlb.NONE, Tlb.NONE)
    with_ad = run(system, AD_ON, fault(), act("guest_access", 0), act("aging"))
    assert with_ad.shared.sptes[0].present and not with_ad.shared.sptes[0].accessed
    assert with_ad.tlb(0) is Tlb.DIRTY


def test_no_prefetch_refresh_since_v6_13(systems: dict[str, System]) -> None:
    """6385d01eec16: a prefetch onto a present SPTE is spurious, so the model of an
    era without the refresh has no prefetch operation at all."""
    system = _with(systems["new"], prefetch=Prefetch.NONE)
    assert "prefetch" not in [op.name for op in system.model.operations]
    refreshing = _with(systems["new"], prefetch=Prefetch.REFRESH)
    assert semantics.step(refreshing, run(refreshing, AD_ON, fault()), act("prefetch", 0))
