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
@pytest.mark.parametrize("rule_name", ["old", "new", "legacy"])
def test_verdicts_match_the_specs(
    shipped_rules: dict[str, Rule], rule_name: str, vcpus: int
) -> None:
    rule = shipped_rules[rule_name]
    session = Session(System(rule))
    for prop in PROPERTIES:
        result = check_property(rule, prop, Options(vcpus=vcpus), session)
        assert result.verdict is rule.expected[prop.name], prop.name
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
    assert result.proof is not None and result.proof.found_with == 2
    assert result.proof.invariant.render() == [
        "writable => mmu_writable",
        "forall v: tlb_writable[v] => mmu_writable && present",
    ]


def test_an_exhausted_budget_is_inconclusive_never_holds(shipped_rules: dict[str, Rule]) -> None:
    for prop in PROPERTIES:
        result = check_property(shipped_rules["new"], prop, Options(budget=Budget(rlimit=1000)))
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


def _profile(name: str) -> Options:
    from checker.rules.specs import load_eras

    from .conftest import SPECS

    return Options(paths=load_eras(SPECS)[name].paths)


def test_legacy_was_sound_while_dirty_log_flushes_ran_under_mmu_lock(
    shipped_rules: dict[str, Rule],
) -> None:
    options = _profile("v3.x")
    for name in ("stale_w", "write_tracking", "dirty_log"):
        result = check_property(shipped_rules["legacy"], PROPERTY_BY_NAME[name], options)
        assert result.verdict is Verdict.HOLDS, name


def test_enable_flush_iff_writable_loses_writes_whatever_the_rule(
    shipped_rules: dict[str, Rule],
) -> None:
    """The bug b64d740ea7dd fixed: aging leaves a stale writable entry on a !W SPTE,
    enabling logging then skips its flush, and a write goes unrecorded."""
    for rule in shipped_rules.values():
        result = check_property(rule, PROPERTY_BY_NAME["dirty_log"], _profile("v4.10-v5.19"))
        assert result.trace is not None, rule.name
        ops = [s.action.op for s in result.trace.steps]
        assert "enable_dirty_logging" in ops and ops[-1] == "guest_write"
        assert "enable_flush" not in ops


def test_a_harvest_flushing_iff_an_spte_changed_loses_writes(
    shipped_rules: dict[str, Rule],
) -> None:
    options = Options(paths=Paths(harvest_flush=HarvestFlush.CHANGED))
    result = check_property(shipped_rules["new"], PROPERTY_BY_NAME["dirty_log"], options)
    assert result.trace is not None
    assert [s.action.op for s in result.trace.steps][-2:] == ["harvest", "guest_write"]


def test_old_is_precise_without_the_prefetch_refresh(shipped_rules: dict[str, Rule]) -> None:
    """In this model only the prefetch refresh makes 'old' flush where MW stays set;
    the dirty-log write-protects consult the rule but their callers ignore it."""
    result = check_property(shipped_rules["old"], PROPERTY_BY_NAME["precision"], _profile("v6.13"))
    assert result.verdict is Verdict.HOLDS
