"""JUnit XML: it parses, one testcase per (rule, property), and the right counts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from checker import junit
from checker import lock as lockfile
from checker.check import Options
from checker.gate import GateReport, GateSettings, gate
from checker.smt import Budget
from checker.specs import Rule


def cases(report: GateReport) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(junit.render(report))
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def counts(element: ET.Element) -> dict[str, int]:
    return {k: int(element.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")}


def test_a_regression_is_a_failure_with_the_trace(regressed_report: GateReport) -> None:
    report = regressed_report
    text = junit.render(report)
    assert text == junit.render(report)  # no timings: the same bytes every time
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert counts(root) == {"tests": 16, "failures": 4, "errors": 0, "skipped": 0}
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["rule legacy", "rule new", "rule old", "lockfile"]
    assert counts(suites["rule new"]) == {"tests": 5, "failures": 3, "errors": 0, "skipped": 0}
    assert counts(suites["lockfile"]) == {"tests": 1, "failures": 1, "errors": 0, "skipped": 0}

    found = cases(report)
    assert len(found) == 16
    regressed = found["rule.new", "stale_w"]
    failure = regressed.find("failure")
    assert failure is not None and failure.get("type") == "REGRESSED"
    assert failure.get("message") == "REGRESSED: holds in the lock, now violated in 4 steps"
    body = failure.text or ""
    assert "step  vcpu" in body and "sync_spte(!guest_writable)" in body
    assert "reproduce: checker check --rule new --vcpus 2" in body
    assert regressed.get("file") == "specs/rules/new.toml" and regressed.get("line") == "2"

    # an expected violation passes, with its trace in system-out
    expected = found["rule.legacy", "write_tracking"]
    assert expected.find("failure") is None
    out = expected.find("system-out")
    assert out is not None and "violated, as expected" in (out.text or "")

    stale = found["lockfile", "specs/verdicts.lock.json"]
    stale_failure = stale.find("failure")
    assert stale_failure is not None and "- rule new: expression changed" in (
        stale_failure.text or ""
    )
    assert "checker gate --update" in (stale_failure.get("message") or "")


def test_inconclusive_is_an_error_or_skipped_when_allowed(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    tiny = Options(budget=Budget(rlimit=1000))
    rules = [shipped_rules["new"]]
    strict = ET.fromstring(junit.render(gate(rules, lock, GateSettings(tiny), complete=False)))
    assert counts(strict) == {"tests": 6, "failures": 0, "errors": 5, "skipped": 0}
    error = next(strict.iter("error"))
    assert error.get("type") == "INCONCLUSIVE"
    allowed = gate(rules, lock, GateSettings(tiny, allow_inconclusive=True), complete=False)
    root = ET.fromstring(junit.render(allowed))
    assert counts(root) == {"tests": 6, "failures": 0, "errors": 0, "skipped": 5}
    assert "(allowed)" in (next(root.iter("skipped")).get("message") or "")


def test_rules_not_rechecked_are_skipped_and_a_pass_has_no_failure(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    report = gate(list(shipped_rules.values()), lock, GateSettings(), changed={"new"}, since="v1")
    root = ET.fromstring(junit.render(report))
    assert counts(root) == {"tests": 16, "failures": 0, "errors": 0, "skipped": 10}
    skipped = next(root.iter("skipped"))
    assert skipped.get("message") == "not re-checked: unchanged since v1"
