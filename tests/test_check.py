"""Verdicts of the shipped rules, per property, and the proofs and traces behind them."""

from __future__ import annotations

import pytest

from checker.engines.check import Options, Session, check_property
from checker.engines.smt import Budget
from checker.model import PROPERTIES, PROPERTY_BY_NAME, HarvestFlush, Paths, System
from checker.rules.specs import Rule
from checker.verdict import Verdict

#: shortest counterexample length per (rule, property); absent means it holds
SHORTEST = {
    ("old", "precision"): 2,
    ("legacy", "stale_w"): 4,
    ("legacy", "write_tracking"): 5,
    ("legacy", "precision"): 2,
}


@pytest.mark.parametrize("vcpus", [1, 2, 3])
@pytest.mark.parametrize(
    ("rule_name", "mmu"),
    [("old", "shadow"), ("old", "tdp"), ("new", "shadow"), ("new", "tdp"), ("legacy", "shadow")],
)
def test_verdicts_match_the_specs(
    shipped_rules: dict[str, Rule], rule_name: str, mmu: str, vcpus: int
) -> None:
    """Each rule in its own era ([origin] era), on each MMU of it: the [expect] verdicts."""
    rule = shipped_rules[rule_name]
    era = rule.origin["era"]
    paths = _era(era, mmu)
    expected = rule.expected_for(era, mmu)
    assert set(expected) == {p.name for p in PROPERTIES}
    session = Session(System(rule, paths))
    for prop in PROPERTIES:
        result = check_property(rule, prop, Options(vcpus=vcpus, paths=paths), session)
        assert result.verdict is expected[prop.name], prop.name
        if result.verdict is Verdict.HOLDS:
            assert result.proof is not None and result.proof.certificate.ok
            assert result.proof.certificate.vcpus == vcpus
            assert result.trace is None
        else:
            assert result.trace is not None and result.proof is None
            assert result.trace.depth == SHORTEST[rule_name, prop.name]
            # the fewest vCPUs that show it: every shipped violation needs only one
            assert result.trace.vcpus == 1


def test_legacy_trace_is_the_domain_race(shipped_rules: dict[str, Rule]) -> None:
    """Stale writable entry survives aging; tracking clears MW without a flush; the
    vCPU writes through it."""
    result = check_property(shipped_rules["legacy"], PROPERTY_BY_NAME["write_tracking"], Options())
    assert result.trace is not None
    ops = [s.action.op for s in result.trace.steps]
    assert ops == ["page_fault", "guest_access", "aging", "write_protect", "guest_write"]
    protect = result.trace.steps[3]
    assert protect.outcome.rule_consulted and not protect.outcome.rule_flush
    assert (
        protect.before.shared.sptes[0].mmu_writable
        and not protect.after.shared.sptes[0].mmu_writable
    )


def test_old_over_flushes_on_a_refresh_keeping_mw(shipped_rules: dict[str, Rule]) -> None:
    result = check_property(shipped_rules["old"], PROPERTY_BY_NAME["precision"], Options())
    assert result.trace is not None
    last = result.trace.steps[-1]
    assert last.action.op == "prefetch" and last.outcome.rule_flush
    assert last.before.shared.sptes[0].mmu_writable and last.after.shared.sptes[0].mmu_writable


def test_new_stale_w_invariant_reads_like_the_domain(shipped_rules: dict[str, Rule]) -> None:
    result = check_property(shipped_rules["new"], PROPERTY_BY_NAME["stale_w"], Options(vcpus=8))
    assert result.proof is not None and result.proof.found_with == 1
    assert result.proof.invariant.render() == [
        "writable => mmu_writable",
        "forall v: tlb_writable[v] => mmu_writable && present",
    ]


def test_an_exhausted_budget_is_inconclusive_never_holds(shipped_rules: dict[str, Rule]) -> None:
    # v6.13: the era whose operations assert the rule's answer, so that every
    # property, 'assertion' too, needs the solver; 'assertion' is small enough that
    # 1000 units decide it, so the budget is smaller
    paths = _era("v6.13", "shadow")
    for prop in PROPERTIES:
        options = Options(paths=paths, budget=Budget(rlimit=100))
        result = check_property(shipped_rules["new"], prop, options)
        assert result.verdict is Verdict.INCONCLUSIVE, prop.name
        assert result.reason


@pytest.mark.parametrize(
    ("rule_name", "prop", "depth"), [("old", "precision", 1), ("legacy", "write_tracking", 4)]
)
def test_a_small_depth_still_gives_the_shortest_trace(
    shipped_rules: dict[str, Rule], rule_name: str, prop: str, depth: int
) -> None:
    """--depth below the shortest trace: Spacer shows the violation, so BMC searches on
    and says so, rather than giving up on a verdict already decided."""
    result = check_property(shipped_rules[rule_name], PROPERTY_BY_NAME[prop], Options(depth=depth))
    assert result.verdict is Verdict.VIOLATED and result.trace is not None
    assert result.trace.depth == SHORTEST[rule_name, prop]
    assert f"longer than --depth {depth}" in result.reason


# --- the paths around the rule, per kernel era -------------------------------------------


def _era(name: str, mmu: str = "shadow") -> Paths:
    """The paths of one MMU of a shipped era."""
    from checker.model.paths import Mmu
    from checker.rules.specs import load_eras

    from .conftest import SPECS

    return load_eras(SPECS)[name].paths[Mmu(mmu)]


def _profile(name: str, mmu: str = "shadow") -> Options:
    return Options(paths=_era(name, mmu))


def test_legacy_was_sound_while_dirty_log_flushes_ran_under_mmu_lock(
    shipped_rules: dict[str, Rule],
) -> None:
    options = _profile("v3.x")
    for name in (p.name for p in PROPERTIES):
        result = check_property(shipped_rules["legacy"], PROPERTY_BY_NAME[name], options)
        assert result.verdict is Verdict.HOLDS, name


def test_enable_flush_iff_the_rule_asked_loses_writes(
    shipped_rules: dict[str, Rule],
) -> None:
    """The bug b64d740ea7dd (v6.0) fixed: aging leaves a stale writable entry on a !W
    SPTE, enabling logging then skips its flush (the shadow MMU flushed iff
    mmu_spte_update asked, and 'old' does not ask on a !W SPTE), and a write goes
    unrecorded."""
    old = shipped_rules["old"]
    result = check_property(old, PROPERTY_BY_NAME["dirty_log"], _profile("v4.10-v5.6"))
    assert result.trace is not None
    ops = [s.action.op for s in result.trace.steps]
    assert "enable_dirty_logging" in ops and ops[-1] == "guest_write"
    assert "enable_flush" not in ops
    # ... and the fix: an unconditional flush after enabling logging
    result = check_property(old, PROPERTY_BY_NAME["dirty_log"], _profile("v6.0-v6.1"))
    assert result.verdict is Verdict.HOLDS


def test_a_harvest_flushing_iff_an_spte_changed_loses_writes(
    shipped_rules: dict[str, Rule],
) -> None:
    options = Options(paths=Paths(harvest_flush=HarvestFlush.CHANGED))
    result = check_property(shipped_rules["new"], PROPERTY_BY_NAME["dirty_log"], options)
    assert result.trace is not None
    assert [s.action.op for s in result.trace.steps][-2:] == ["harvest", "guest_write"]


def test_old_is_precise_without_the_prefetch_refresh(shipped_rules: dict[str, Rule]) -> None:
    """In this model only the prefetch refresh makes 'old' flush where MW stays set;
    the dirty-log write-protects consult the rule but their callers ignore it. In
    v6.13 aging asserts the rule asks for no flush (WARN_ON_ONCE), which 'old' does
    not honour: its assertion is violated there."""
    old = shipped_rules["old"]
    result = check_property(old, PROPERTY_BY_NAME["precision"], _profile("v6.13"))
    assert result.verdict is Verdict.HOLDS
    result = check_property(old, PROPERTY_BY_NAME["assertion"], _profile("v6.13"))
    assert result.verdict is Verdict.VIOLATED and result.trace is not None
    assert "aging" in [s.action.op for s in result.trace.steps]


@pytest.mark.parametrize("mmu", ["shadow", "tdp"])
def test_new_holds_everything_in_v6_13(shipped_rules: dict[str, Rule], mmu: str) -> None:
    for prop in PROPERTIES:
        result = check_property(shipped_rules["new"], prop, _profile("v6.13", mmu))
        assert result.verdict is Verdict.HOLDS, prop.name


def test_a_search_already_run_is_not_run_again_for_the_fewest_vcpus(
    shipped_rules: dict[str, Rule], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spacer searches with one vCPU first; when what it proved there does not lift
    to N and the search with N shows a violation, the fewest vCPUs showing it are
    looked for without searching with one vCPU again."""
    from checker.engines import check, spacer
    from checker.engines.invariant import Invariant
    from checker.engines.smt import Answer

    searched: list[int] = []
    real = check._spacer

    def one_vcpu_cannot(system: System, vcpus: int, prop: object, budget: Budget) -> object:
        searched.append(vcpus)
        if vcpus == 1:
            # as if one vCPU could not break it, with an invariant ("true") that is
            # not safe at N: certification refuses it, so Spacer searches with N
            return spacer.SpacerResult(Answer.UNSAT, Invariant(()))
        return real(system, vcpus, prop, budget)  # type: ignore[arg-type]

    monkeypatch.setattr(check, "_spacer", one_vcpu_cannot)
    result = check_property(shipped_rules["legacy"], PROPERTY_BY_NAME["stale_w"], Options())
    assert searched == [1, 2]
    assert result.verdict is Verdict.VIOLATED
    assert result.trace is not None and result.trace.vcpus == 2
