"""The gate's decision table, staleness, re-checking and lock refresh, as values."""

from __future__ import annotations

import dataclasses

import pytest

from checker.engines.smt import Budget
from checker.model import PROPERTY_BY_NAME
from checker.report import lock as lockfile
from checker.report.gate import GateReport, Status, decide, gate
from checker.rules.specs import Rule, adhoc_rule
from checker.verdict import Verdict

from .conftest import SPECS, settings_for
from .scenarios import LEGACY, NEW, new_regressed
from .scenarios import with_rules as rules_with

#: the lock's paths: the newest era (v6.13), shadow MMU, as 'checker gate' checks
SETTINGS = settings_for("v6.13")
H, V, I = Verdict.HOLDS, Verdict.VIOLATED, Verdict.INCONCLUSIVE


def status(report: GateReport, rule: str, prop: str) -> Status:
    return next(p.status for p in report.outcomes if p.rule.name == rule and p.prop.name == prop)


# --- the decision table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "verdict", "expected", "locked", "wanted"),
    [
        ("stale_w", I, H, H, Status.INCONCLUSIVE),
        ("stale_w", V, H, H, Status.REGRESSED),
        # an expectation edited to "violated" does not excuse a regression
        ("stale_w", V, V, H, Status.REGRESSED),
        ("stale_w", V, H, None, Status.VIOLATES_EXPECTATION),
        ("stale_w", V, V, V, None),
        ("stale_w", H, V, V, Status.UNEXPECTEDLY_HOLDS),
        ("stale_w", H, H, V, None),  # an improvement
        # precision is not safety: it fails only when expected to hold
        ("precision", V, V, H, None),
        ("precision", V, H, H, Status.VIOLATES_EXPECTATION),
        ("precision", H, None, None, None),
    ],
)
def test_decision_table(
    prop: str,
    verdict: Verdict,
    expected: Verdict | None,
    locked: Verdict | None,
    wanted: Status | None,
) -> None:
    assert decide(PROPERTY_BY_NAME[prop], verdict, expected, locked) is wanted


# --- whole gates --------------------------------------------------------------------------


def test_the_shipped_rules_pass_against_the_shipped_lock(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    report = gate(list(shipped_rules.values()), lock, SETTINGS)
    assert report.exit_code == 0, report.stale
    assert report.stale == () and report.failures == [] and report.warnings == []
    assert {p.status for p in report.outcomes} == {Status.OK}
    # it always re-checks: every property of every rule
    assert checks == [name for name in shipped_rules for _ in PROPERTY_BY_NAME]
    assert report.refusal() is None
    # and the lock it would write is the committed one, byte for byte
    assert lockfile.render(report.updated_lock(lock.versions)) == (
        (SPECS / lockfile.LOCK_NAME).read_text(encoding="utf-8")
    )


def test_a_safety_regression_fails_exit_1_and_wins_over_staleness(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    report = gate(new_regressed(shipped_rules), lock, SETTINGS)
    assert report.exit_code == 1
    assert status(report, "new", "stale_w") is Status.REGRESSED
    assert status(report, "new", "write_tracking") is Status.REGRESSED
    # v6.13's callers assert the rule's answer: the legacy condition's flush requests
    # are seen there
    assert status(report, "new", "assertion") is Status.REGRESSED
    assert "rule new: expression changed" in report.stale
    assert "rule new: formula MW(old) && !MW(new) -> W(old) && !W(new)" in report.stale
    assert report.summary().startswith("gate: FAIL (exit 1): REGRESSED new: stale_w")
    assert "(the lockfile is also stale)" in report.summary()
    assert report.refusal() is not None


def test_an_improvement_is_not_a_failure_but_makes_the_lock_stale(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    # legacy's spec, stated for the gate's era, still expects its old bug
    legacy = dataclasses.replace(
        shipped_rules["legacy"],
        expression=NEW,
        formula=shipped_rules["new"].formula,
        origin={**shipped_rules["legacy"].origin, "era": "v6.13"},
        expected={"stale_w": Verdict.VIOLATED},
        expected_by_mmu={},
    )
    report = gate(rules_with(shipped_rules, legacy=legacy), lock, SETTINGS)
    assert report.exit_code == 2
    assert report.failures == []
    # ... a warning, not a failure
    assert status(report, "legacy", "stale_w") is Status.UNEXPECTEDLY_HOLDS
    assert "rule legacy: stale_w: verdict violated -> holds" in report.stale
    assert report.refusal() is None  # refreshing the lock may record the improvement


def test_a_precision_regression_is_reported_and_fails_only_if_expected_to_hold(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    # old's condition violates precision in the shadow MMU of its own era (v6.4-v6.12),
    # where new's holds: gate there against a lock of that era
    settings = settings_for("v6.4-v6.12")
    lock = gate(list(shipped_rules.values()), None, settings).updated_lock(lock.versions)
    old_condition = shipped_rules["old"]
    expected = {**shipped_rules["new"].expected, "precision": Verdict.VIOLATED}
    new = dataclasses.replace(
        shipped_rules["new"],
        expression=old_condition.expression,
        formula=old_condition.formula,
        origin={**shipped_rules["new"].origin, "era": "v6.4-v6.12"},
        expected=expected,
        expected_by_mmu={},
    )
    report = gate(rules_with(shipped_rules, new=new), lock, settings)
    assert report.exit_code == 2 and report.failures == []
    row = next(p for p in report.outcomes if p.rule.name == "new" and p.prop.name == "precision")
    assert row.status is Status.CHANGED
    assert "verdict holds -> violated" in row.detail and "precision regression" in row.detail
    strict = dataclasses.replace(new, expected=shipped_rules["new"].expected)
    report = gate(rules_with(shipped_rules, new=strict), lock, settings)
    assert report.exit_code == 1
    assert status(report, "new", "precision") is Status.VIOLATES_EXPECTATION


def test_a_new_rule_violating_its_expectation_fails(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    eager = dataclasses.replace(
        adhoc_rule(LEGACY, name="eager"),
        origin={"era": "v6.13"},  # its [expect] is stated for the gate's era
        expected=dict(shipped_rules["new"].expected),
    )
    report = gate([*shipped_rules.values(), eager], lock, SETTINGS)
    assert report.exit_code == 1
    assert status(report, "eager", "stale_w") is Status.VIOLATES_EXPECTATION
    assert status(report, "eager", "dirty_log") is Status.NEW
    assert "rule eager: new (not in the lock)" in report.stale


def test_added_and_removed_rules_make_the_lock_stale(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    report = gate([shipped_rules["new"], shipped_rules["old"]], lock, SETTINGS)
    assert report.exit_code == 2
    assert report.stale == ("rule legacy: removed (in the lock, no longer a rule)",)
    # a gate over a subset of the rules (complete=False) does not say so
    partial = gate([shipped_rules["new"]], lock, SETTINGS, complete=False)
    assert partial.exit_code == 0
    assert gate(list(shipped_rules.values()), None, SETTINGS).stale[0] == "there is no lockfile"


def test_inconclusive_fails_unless_allowed_and_is_never_compared_or_locked(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    tiny = dataclasses.replace(SETTINGS.options, budget=Budget(rlimit=100))
    report = gate(list(shipped_rules.values()), lock, dataclasses.replace(SETTINGS, options=tiny))
    assert report.exit_code == 1
    assert {p.status for p in report.outcomes} == {Status.INCONCLUSIVE}
    assert report.stale == ()
    held = next(p for p in report.outcomes if p.rule.name == "new")
    assert "the lock records a proof that was not re-established" in held.detail
    allowed = gate(
        list(shipped_rules.values()),
        lock,
        dataclasses.replace(SETTINGS, options=tiny, allow_inconclusive=True),
    )
    assert allowed.exit_code == 0
    assert len(allowed.warnings) == 3 * len(PROPERTY_BY_NAME) and allowed.failures == []
    assert "inconclusive verdicts cannot be locked" in (allowed.refusal() or "")


def test_changed_limits_rechecking_unless_the_model_or_the_rule_text_changed(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    rules = list(shipped_rules.values())
    report = gate(rules, lock, SETTINGS, changed=set(), since="HEAD")
    assert report.exit_code == 0 and checks == []
    assert {p.status for p in report.outcomes} == {Status.NOT_RECHECKED}
    assert report.summary() == (
        "gate: pass: 0 rules re-checked (3 unchanged since HEAD), lockfile up to date"
    )
    assert report.refusal() == "some rules were not re-checked"

    gate(rules, lock, SETTINGS, changed={"old"}, since="HEAD")
    assert set(checks) == {"old"}
    checks.clear()

    # a rule whose text differs from the lock is re-checked whatever git says
    reworded = dataclasses.replace(shipped_rules["new"], expression=NEW.replace(" ", "  "))
    other = dataclasses.replace(shipped_rules["old"], expression=LEGACY)
    gate(rules_with(shipped_rules, new=reworded, old=other), lock, SETTINGS, changed=set())
    assert set(checks) == {"old"}  # layout alone leaves the hash unchanged
    checks.clear()

    moved = dataclasses.replace(lock, model=dataclasses.replace(lock.model, sha256="0" * 64))
    report = gate(rules, moved, SETTINGS, changed=set(), since="HEAD")
    assert set(checks) == {"legacy", "new", "old"}
    assert report.exit_code == 2
    assert report.stale[0].startswith("the model changed (encoding sha256 000000000000 -> ")


def test_changed_evidence_makes_the_lock_stale(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    legacy = lock.rules["legacy"]
    stale_w = legacy.properties["stale_w"]
    edited = dataclasses.replace(
        legacy,
        properties={
            **legacy.properties,
            "stale_w": dataclasses.replace(stale_w, counterexample_length=3),
            "assertion": dataclasses.replace(
                legacy.properties["assertion"], counterexample_sha256="0" * 64
            ),
            "encoding": dataclasses.replace(
                legacy.properties["encoding"], invariant_sha256="0" * 64
            ),
        },
    )
    report = gate(
        list(shipped_rules.values()),
        dataclasses.replace(lock, rules={**lock.rules, "legacy": edited}),
        SETTINGS,
    )
    assert report.exit_code == 2
    assert report.stale == (
        "rule legacy: stale_w: counterexample 3 -> 4 steps",
        "rule legacy: encoding: invariant changed",
        "rule legacy: assertion: counterexample changed (same length, 2)",
    )
    assert status(report, "legacy", "stale_w") is Status.CHANGED


def test_expectations_can_come_from_elsewhere(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    """How a kernel tree's rule is gated: its own rule, the verdicts it must keep."""
    kernel = adhoc_rule(LEGACY, name="kernel")
    report = gate(
        [kernel],
        None,
        SETTINGS,
        expectations={"kernel": shipped_rules["new"].expected},
        complete=False,
    )
    assert report.exit_code == 1
    assert status(report, "kernel", "write_tracking") is Status.VIOLATES_EXPECTATION
