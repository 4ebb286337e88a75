"""SARIF 2.1.0: valid against the schema's required shape, located at the rule's
line, one result per violation, the trace as codeFlows."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import jsonschema
import pytest

from checker.engines.smt import Budget
from checker.report import lock as lockfile
from checker.report import sarif
from checker.report.gate import GateSettings, gate
from checker.rules.specs import Rule

from .conftest import ROOT, SPECS
from .scenarios import new_regressed
from .test_gate import SETTINGS, settings_for

SCHEMA = json.loads((ROOT / "tests" / "schemas" / "sarif-2.1.0-subset.json").read_text())


@pytest.fixture
def regression(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> dict[str, Any]:
    """The regressed gate in old's own era (v6.4-v6.12, shadow MMU), against a lock of
    that era: old's [expect] applies there (precision violated), so a suppression is
    shown; legacy's [expect] (v3.x) does not."""
    settings = settings_for("v6.4-v6.12")
    era_lock = gate(list(shipped_rules.values()), None, settings).updated_lock(lock.versions)
    report = gate(
        new_regressed(shipped_rules),
        era_lock,
        settings,
        lock_path=SPECS / lockfile.LOCK_NAME,
        root=ROOT,
    )
    text = sarif.render(report)
    assert text == sarif.render(report)
    document: dict[str, Any] = json.loads(text)
    return document


def suppressed(document: dict[str, Any]) -> dict[str, Any]:
    """The first result that carries a suppression."""
    result: dict[str, Any] = next(
        r for r in document["runs"][0]["results"] if r.get("suppressions")
    )
    return result


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_valid_against_the_required_shape(regression: dict[str, Any]) -> None:
    validate(regression)
    assert regression["version"] == "2.1.0"
    assert regression["$schema"].endswith("sarif-2.1.0.json")
    driver = regression["runs"][0]["tool"]["driver"]
    assert driver["name"] == "kvm-flush-checker"
    assert [r["id"] for r in driver["rules"]] == [
        "stale_w",
        "write_tracking",
        "dirty_log",
        "encoding",
        "precision",
        "assertion",
        "stale-lockfile",
    ]


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["runs"][0]["results"][0].pop("message"),
        lambda d: d["runs"][0]["results"][0]["codeFlows"][0]["threadFlows"][0].update(locations=[]),
        lambda d: d["runs"][0]["results"][0]["codeFlows"][0]["threadFlows"][0]["locations"][0][
            "state"
        ].update(spte="0x0e02"),
        lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"].update(
            startLine=0
        ),
        lambda d: d.update(version="2.0.0"),
        lambda d: suppressed(d)["suppressions"][0].update(kind="spec"),
        lambda d: suppressed(d)["suppressions"][0].pop("kind"),
        lambda d: suppressed(d)["suppressions"][0].update(status="expected"),
        lambda d: suppressed(d)["suppressions"][0].update(reason="[expect]"),
    ],
)
def test_the_schema_rejects_broken_documents(regression: dict[str, Any], break_it: Any) -> None:
    """Negative controls: the subset schema really checks what the test relies on."""
    broken = copy.deepcopy(regression)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_one_result_per_violation_at_the_rule_line(regression: dict[str, Any]) -> None:
    results = regression["runs"][0]["results"]
    found = {(r["properties"]["rule"], r["ruleId"]) for r in results if "properties" in r}
    # legacy's three expected violations, old's precision and new's three new ones
    assert found == {
        ("legacy", "stale_w"),
        ("legacy", "write_tracking"),
        ("legacy", "precision"),
        ("old", "precision"),
        ("new", "stale_w"),
        ("new", "write_tracking"),
        ("new", "precision"),
    }
    by_key = {(r["properties"]["rule"], r["ruleId"]): r for r in results if "properties" in r}
    regressed = by_key["new", "stale_w"]
    assert regressed["level"] == "error" and regressed["kind"] == "fail"
    assert "REGRESSED" in regressed["message"]["text"]
    physical = regressed["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "specs/rules/new.toml"
    assert physical["region"]["startLine"] == 2
    # expected violations are visible but do not look like failures
    assert by_key["old", "precision"]["level"] == "note"
    # fingerprints name the (rule, property) pair, not a line
    prints = {r["partialFingerprints"]["rulePropertyHash/v1"] for r in results}
    assert len(prints) == len(results)
    stale = [r for r in results if r["ruleId"] == "stale-lockfile"]
    assert len(stale) == 1
    assert stale[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "specs/verdicts.lock.json"
    )


def test_the_trace_is_a_code_flow_with_one_location_per_state(
    regression: dict[str, Any],
) -> None:
    results = regression["runs"][0]["results"]
    tracking = next(
        r
        for r in results
        if r.get("properties", {}).get("rule") == "new" and r["ruleId"] == "write_tracking"
    )
    steps = tracking["codeFlows"][0]["threadFlows"][0]["locations"]
    assert len(steps) == 6  # the initial state and 5 steps
    assert [s["executionOrder"] for s in steps] == list(range(6))
    assert steps[4]["location"]["message"]["text"] == (
        "step 4: vcpu0 write_protect (spte_write_protect); "
        "is_writable_pte(old_spte)=0 && !is_writable_pte(new_spte)=1 → no flush"
    )
    assert steps[4]["state"] == {
        "spte": {"text": "0x0a00 P HW AT"},
        "tlb0": {"text": "rw"},  # one vCPU: the fewest that show the violation
        "gfn": {"text": "tracked"},
    }
    assert steps[5]["location"]["physicalLocation"]["region"]["startLine"] == 2


def test_inconclusive_results_are_open(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    tiny = GateSettings(
        dataclasses.replace(SETTINGS.options, budget=Budget(rlimit=100)), SETTINGS.era
    )
    document = sarif.document(gate([shipped_rules["new"]], lock, tiny, complete=False))
    validate(document)
    results = document["runs"][0]["results"]
    assert len(results) == 6
    assert {(r["kind"], r["level"]) for r in results} == {("open", "error")}
    assert "codeFlows" not in results[0]


def test_expected_violations_are_suppressed_by_their_expect_table(
    regression: dict[str, Any],
) -> None:
    """old's declared violation (its [expect], in its own era) is accepted, not an open
    problem; the failing rows, and legacy's violations (its [expect] is stated for
    v3.x), are not suppressed."""
    results = regression["runs"][0]["results"]
    by_key = {(r["properties"]["rule"], r["ruleId"]): r for r in results if "properties" in r}
    suppressed = {key for key, r in by_key.items() if "suppressions" in r}
    assert suppressed == {("old", "precision")}
    assert by_key["old", "precision"]["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "expected: the [expect] table of specs/rules/old.toml says "
            'precision = "violated"',
        }
    ]
    assert all(by_key[key]["level"] == "note" for key in suppressed)
    # the new rule's violations fail the gate: open, at error level
    assert all(by_key["new", p]["level"] == "error" for p in ("stale_w", "write_tracking"))
    stale = next(r for r in results if r["ruleId"] == "stale-lockfile")
    assert "suppressions" not in stale
