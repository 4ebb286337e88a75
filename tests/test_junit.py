"""JUnit XML: valid against Jenkins xUnit's JUnit schema, one testcase per (rule,
property), the right counts, and check times."""

from __future__ import annotations

import dataclasses
import itertools
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
import xmlschema

from checker.engines.smt import Budget
from checker.report import gate as gate_module
from checker.report import junit
from checker.report import lock as lockfile
from checker.report.gate import GateReport, GateSettings, gate
from checker.rules.specs import Rule

from .conftest import ROOT
from .test_gate import SETTINGS

#: the JUnit schema of Jenkins' xUnit plugin (see the file's header for its source)
SCHEMA = xmlschema.XMLSchema(ROOT / "tests" / "schemas" / "junit-10.xsd")


def masked(text: str) -> str:
    """The report without its timings, the one part that differs between runs."""
    return re.sub(r' time="[0-9]+\.[0-9]{3}"', ' time="-"', text)


def cases(report: GateReport) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(junit.render(report))
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def counts(element: ET.Element) -> dict[str, int]:
    return {k: int(element.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")}


def test_a_regression_is_a_failure_with_the_trace(regressed_report: GateReport) -> None:
    report = regressed_report
    text = junit.render(report)
    SCHEMA.validate(text)
    assert masked(text) == masked(junit.render(report))  # the same bytes but for timings
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert counts(root) == {"tests": 19, "failures": 4, "errors": 0, "skipped": -1}
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["rule legacy", "rule new", "rule old", "lockfile"]
    assert counts(suites["rule new"]) == {"tests": 6, "failures": 3, "errors": 0, "skipped": 0}
    assert counts(suites["lockfile"]) == {"tests": 1, "failures": 1, "errors": 0, "skipped": 0}

    found = cases(report)
    assert len(found) == 19
    regressed = found["rule.new", "stale_w"]
    failure = regressed.find("failure")
    assert failure is not None and failure.get("type") == "REGRESSED"
    assert failure.get("message") == "REGRESSED: holds in the lock, now violated in 4 steps"
    body = failure.text or ""
    assert "step  vcpu" in body and "sync_spte(!guest_writable)" in body
    assert "reproduce: checker check --rule new --vcpus 2" in body
    # the schema gives a testcase no file or line: the suite has them
    assert regressed.get("file") is None and regressed.get("line") is None
    assert suites["rule new"].get("file") == "specs/rules/new.toml"
    line = suites["rule new"].find("properties/property[@name='line']")
    assert line is not None and line.get("value") == "2"

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
    tiny = dataclasses.replace(SETTINGS.options, budget=Budget(rlimit=100))
    rules = [shipped_rules["new"]]
    text = junit.render(gate(rules, lock, GateSettings(tiny, SETTINGS.era), complete=False))
    SCHEMA.validate(text)
    strict = ET.fromstring(text)
    assert counts(strict) == {"tests": 7, "failures": 0, "errors": 6, "skipped": -1}
    error = next(strict.iter("error"))
    assert error.get("type") == "INCONCLUSIVE"
    allowed = gate(
        rules, lock, GateSettings(tiny, SETTINGS.era, allow_inconclusive=True), complete=False
    )
    text = junit.render(allowed)
    SCHEMA.validate(text)
    root = ET.fromstring(text)
    assert counts(root.find("testsuite")) == {"tests": 6, "failures": 0, "errors": 0, "skipped": 6}
    assert "(allowed)" in (next(root.iter("skipped")).get("message") or "")


def test_rules_not_rechecked_are_skipped_and_a_pass_has_no_failure(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> None:
    report = gate(list(shipped_rules.values()), lock, SETTINGS, changed={"new"}, since="v1")
    text = junit.render(report)
    SCHEMA.validate(text)
    root = ET.fromstring(text)
    skipped = sum(int(s.get("skipped", "0")) for s in root.iter("testsuite"))
    assert counts(root)["tests"] == 19 and skipped == 12
    skipped = next(root.iter("skipped"))
    assert skipped.get("message") == "not re-checked: unchanged since v1"


def test_times_are_the_check_times_and_suites_sum_them(
    checks: list[str],
    shipped_rules: dict[str, Rule],
    lock: lockfile.Lock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a clock on which every check takes 0.125 s: the times are then known exactly
    ticks = itertools.count()
    monkeypatch.setattr(
        gate_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.125)
    )
    report = gate(list(shipped_rules.values()), lock, SETTINGS, changed={"new"}, since="v1")
    root = ET.fromstring(junit.render(report))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    new_cases = [c.get("time") for c in suites["rule new"].iter("testcase")]
    assert new_cases == ["0.125"] * 6
    assert suites["rule new"].get("time") == "0.750"
    # not re-checked: no time spent
    assert {c.get("time") for c in suites["rule old"].iter("testcase")} == {"0.000"}
    assert suites["rule old"].get("time") == "0.000"
    assert root.get("time") == "0.750"


def test_the_schema_rejects_what_jenkins_rejects(regressed_report: GateReport) -> None:
    """Negative controls: the attributes this report used to carry are invalid."""
    text = junit.render(regressed_report)
    SCHEMA.validate(text)
    for broken in [
        text.replace(
            '<testcase classname="rule.new"', '<testcase file="x" classname="rule.new"', 1
        ),
        text.replace(
            '<testcase classname="rule.new"', '<testcase line="2" classname="rule.new"', 1
        ),
        text.replace("<testsuites ", '<testsuites skipped="0" ', 1),
        text.replace('time="', 'time="1.5s', 1),
    ]:
        assert broken != text
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            SCHEMA.validate(broken)
