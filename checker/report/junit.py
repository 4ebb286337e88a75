"""The gate's report as JUnit XML, for CI systems that show test results.

The document is valid against the JUnit schema of Jenkins' xUnit plugin
(``tests/schemas/junit-10.xsd``), which most CI systems accept. One
``<testsuite>`` per rule (``file`` the rule file, and the expression's line as a
``line`` property: a testcase has no place for either) with one ``<testcase>`` per
property (``classname="rule.<name>"``, ``name=<property>``), and, when the gate
compares with a lockfile, a ``lockfile`` suite with one testcase for it:

* a row that fails the gate (REGRESSED, VIOLATES EXPECTATION) is a ``<failure>``
  whose text is the trace table and the reproduce command;
* an inconclusive verdict is an ``<error>``, or ``<skipped>`` when
  ``--allow-inconclusive`` accepted it;
* a rule ``--changed-since`` did not re-check is ``<skipped>``;
* anything else passes; an expected violation carries its trace in
  ``<system-out>``, a warning its text;
* a stale lockfile is a ``<failure>`` of the lockfile testcase, listing why.

``time`` is the property's check time in seconds (three decimals), a suite's the
sum of its testcases', the document's the sum of all: 0 for what was not
re-checked. Timings are the one part that differs between two runs of the same
gate; everything else is byte-identical (tests compare with the times masked).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from checker.report.gate import GateReport, PropertyOutcome, Status
from checker.traces import view


def trace_text(outcome: PropertyOutcome, command: str) -> str:
    """The property, its trace table (if it has one) and the reproduce command."""
    lines = [f"property {outcome.prop.name}: {outcome.prop.statement}"]
    result = outcome.result
    if result is not None and result.trace is not None:
        lines.append(f"shortest counterexample, {result.trace.depth} steps:")
        table = view.step_table(result.trace, outcome.rule.expression)
        lines.extend(view.table_lines(table))
    lines.append(f"reproduce: {command}")
    return "\n".join(lines) + "\n"


def seconds(value: float) -> str:
    """A ``time`` attribute: seconds with three decimals, the schema's precision."""
    return f"{value:.3f}"


def render(report: GateReport) -> str:
    root = ET.Element("testsuites", name="checker gate")
    # the schema has no "skipped" on <testsuites>: it is counted per suite only
    totals: dict[str, float] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0}
    for rule_outcome in report.rules:
        rule = rule_outcome.rule
        suite = ET.SubElement(root, "testsuite", name=f"rule {rule.name}")
        if rule.path is not None:
            suite.set("file", report.display(rule.path))
            located = ET.SubElement(suite, "properties")
            ET.SubElement(located, "property", name="line", value=str(rule.line))
        counts = dict.fromkeys(totals, 0.0)
        for p in rule_outcome.properties:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"rule.{rule.name}",
                name=p.prop.name,
                time=seconds(p.seconds),
            )
            counts["tests"] += 1
            # the sum of the times as written, so that a reader's sum agrees
            counts["time"] += round(p.seconds, 3)
            message = f"{p.status.value}: {p.detail}" if p.detail else p.status.value
            if p.failed and p.status is Status.INCONCLUSIVE:
                counts["errors"] += 1
                ET.SubElement(
                    case, "error", message=message, type=p.status.value
                ).text = trace_text(p, rule_outcome.command)
            elif p.failed:
                counts["failures"] += 1
                ET.SubElement(
                    case, "failure", message=message, type=p.status.value
                ).text = trace_text(p, rule_outcome.command)
            elif p.status in (Status.INCONCLUSIVE, Status.NOT_RECHECKED):
                counts["skipped"] += 1
                skipped = f"{message} (allowed)" if p.status is Status.INCONCLUSIVE else message
                ET.SubElement(case, "skipped", message=skipped)
            else:
                out = []
                if p.warning or p.status is not Status.OK:
                    out.append(f"{message}\n")
                if p.result is not None and p.result.trace is not None:
                    out.append(f"violated, as expected\n{trace_text(p, rule_outcome.command)}")
                if out:
                    ET.SubElement(case, "system-out").text = "".join(out)
        _count(suite, counts, totals)

    # a gate that compares with no lockfile (a kernel tree without --lock) has no
    # lockfile test to pass or fail
    if report.settings.require_lock:
        _lockfile_suite(root, report, totals)
    for key, value in totals.items():
        if key != "skipped":
            root.set(key, _text(key, value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _text(key: str, value: float) -> str:
    return seconds(value) if key == "time" else str(int(value))


def _count(suite: ET.Element, counts: dict[str, float], totals: dict[str, float]) -> None:
    for key, value in counts.items():
        suite.set(key, _text(key, value))
        totals[key] += value


def _lockfile_suite(root: ET.Element, report: GateReport, totals: dict[str, float]) -> None:
    """The ``lockfile`` suite: one testcase, failed when the lock is stale."""
    suite = ET.SubElement(root, "testsuite", name="lockfile")
    where = report.display(report.lock_path) if report.lock_path else "lockfile"
    case = ET.SubElement(suite, "testcase", classname="lockfile", name=where, time=seconds(0))
    counts = dict.fromkeys(totals, 0.0)
    counts["tests"] = 1
    if report.stale:
        counts["failures"] = 1
        text = "".join(f"- {reason}\n" for reason in report.stale)
        ET.SubElement(
            case, "failure", message=f"the lockfile is stale; {report.refresh_hint()}", type="stale"
        ).text = text + f"{report.refresh_hint()}\n"
    _count(suite, counts, totals)
