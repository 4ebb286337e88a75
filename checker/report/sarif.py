"""The gate's report as SARIF 2.1.0, for code-scanning views (GitHub, IDEs).

One run; the driver's rules are the properties (``stale_w``, ...) plus
``stale-lockfile``. One result per violation found (and per undecided verdict):

* located at the rule's expression: ``artifactLocation.uri`` is the rule file
  relative to the repository root, ``region.startLine`` the expression's line;
* ``level`` is ``error`` when the row fails the gate, ``warning`` for an allowed
  inconclusive verdict, ``note`` for a violation the rule is expected to have
  (e.g. ``old``'s precision): reviewers see it without the gate failing on it;
* a violation the rule's ``[expect]`` table declares (and that does not fail the
  gate) carries a ``suppressions`` entry: ``kind`` ``external``, ``status``
  ``accepted`` and a ``justification`` naming the ``[expect]`` entry, so that SARIF
  viewers file it as accepted rather than as an open problem. GitHub code scanning
  does not honour ``suppressions``; the workflow leaves suppressed results out of
  what it uploads, so that they do not sit there as permanent alerts;
* ``kind`` is ``fail`` for a violation, ``open`` for an inconclusive verdict;
* the trace is a ``codeFlows[0].threadFlows[0]`` with one location per state
  (the initial one, then one per step), each with the state as ``{"text": ...}``
  values;
* ``partialFingerprints`` identify the (rule, property) pair independently of
  line numbers, so an alert survives edits elsewhere in the file.

A stale lockfile is one more result, located at the lockfile.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from checker import version
from checker.engines.semantics import State
from checker.model import PROPERTIES
from checker.report.document import verdict_json
from checker.report.gate import GateReport, PropertyOutcome, RuleOutcome, Status
from checker.traces import view
from checker.verdict import Verdict

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL = "kvm-flush-checker"
STALE_LOCK = "stale-lockfile"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _descriptors() -> list[dict[str, Any]]:
    rules = [
        {
            "id": prop.name,
            "name": _camel(prop.name),
            "shortDescription": {"text": f"{prop.title} of the TLB-flush rule"},
            "fullDescription": {"text": prop.statement},
            "defaultConfiguration": {"level": "error" if prop.safety else "warning"},
            "properties": {"safety": prop.safety},
        }
        for prop in PROPERTIES
    ]
    rules.append(
        {
            "id": STALE_LOCK,
            "name": "StaleLockfile",
            "shortDescription": {"text": "the lockfile does not match the rules or the model"},
            "fullDescription": {
                "text": "A rule or the model changed and the lockfile was not refreshed: run "
                "'checker gate --update' (or 'make lock') and commit the lockfile."
            },
            "defaultConfiguration": {"level": "error"},
        }
    )
    return rules


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def _location(uri: str, line: int, message: str | None = None) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": max(1, line)},
        }
    }
    if message is not None:
        location["message"] = {"text": message}
    return location


def _state(state: State) -> dict[str, dict[str, str]]:
    return {key: {"text": value} for key, value in view.state_items(state)}


def _code_flow(p: PropertyOutcome, uri: str, line: int) -> dict[str, Any]:
    assert p.result is not None and p.result.trace is not None
    trace = p.result.trace
    first = trace.initial
    ad = ("on, PML" if first.shared.slot.pml else "on") if first.shared.slot.ad_enabled else "off"
    locations = [
        {
            "location": _location(uri, line, f"step 0: initial state, A/D bits {ad}"),
            "state": _state(first),
            "executionOrder": 0,
            "nestingLevel": 0,
        }
    ]
    for i, step in enumerate(trace.steps, start=1):
        actor = "host" if step.action.vcpu is None else f"vcpu{step.action.vcpu}"
        text = f"step {i}: {actor} {step.action.label} ({step.operation.function})"
        if step.outcome.rule_consulted:
            text += f"; {view.decision_text(step, p.rule.expression)}"
        if step.outcome.flush:
            text += "; every TLB flushed"
        locations.append(
            {
                "location": _location(uri, line, text),
                "state": _state(step.after),
                "executionOrder": i,
                "nestingLevel": 0,
            }
        )
    return {
        "message": {"text": f"shortest counterexample to {p.prop.name}, {trace.depth} steps"},
        "threadFlows": [{"locations": locations}],
    }


def _result(report: GateReport, outcome: RuleOutcome, p: PropertyOutcome) -> dict[str, Any]:
    rule = outcome.rule
    uri = report.display(rule.path) if rule.path is not None else f"rule:{rule.name}"
    assert p.result is not None
    inconclusive = p.status is Status.INCONCLUSIVE
    if p.failed:
        level = "error"
    elif inconclusive or p.warning:
        level = "warning"
    else:
        level = "note"
    if inconclusive:
        text = f"rule {rule.name}: {p.prop.name} is INCONCLUSIVE: {p.detail}"
    else:
        assert p.result.trace is not None
        depth = p.result.trace.depth
        text = f"rule {rule.name} violates {p.prop.name} ({p.prop.title}) in {depth} steps"
        text += f": {p.status.value}, {p.detail}" if p.failed else ", as its spec expects"
    text += f". Reproduce: {outcome.command}"
    result: dict[str, Any] = {
        "ruleId": p.prop.name,
        "kind": "open" if inconclusive else "fail",
        "level": level,
        "message": {"text": text},
        "locations": [_location(uri, rule.line)],
        "partialFingerprints": {"rulePropertyHash/v1": _fingerprint(rule.name, p.prop.name)},
        "properties": {
            "rule": rule.name,
            "expression": rule.expression,
            "gateStatus": p.status.value,
            "expected": verdict_json(p.expected),
            "locked": verdict_json(p.locked.verdict if p.locked is not None else None),
            "command": outcome.command,
        },
    }
    if p.result.trace is not None:
        result["codeFlows"] = [_code_flow(p, uri, rule.line)]
    if expected_violation(p):
        where = report.display(rule.path) if rule.path is not None else f"rule {rule.name}"
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"expected: the [expect] table of {where} says "
                f'{p.prop.name} = "violated"',
            }
        ]
    return result


def expected_violation(p: PropertyOutcome) -> bool:
    """A violation the rule's ``[expect]`` declares and that does not fail the gate
    (a REGRESSED row fails even when its ``[expect]`` says violated)."""
    return (
        not p.failed
        and p.expected is Verdict.VIOLATED
        and p.result is not None
        and p.result.trace is not None
    )


def document(report: GateReport) -> dict[str, Any]:
    results = [
        _result(report, outcome, p)
        for outcome in report.rules
        for p in outcome.properties
        if p.result is not None and (p.result.trace is not None or p.status is Status.INCONCLUSIVE)
    ]
    if report.stale:
        where = report.display(report.lock_path) if report.lock_path else "lockfile"
        reasons = "; ".join(report.stale)
        results.append(
            {
                "ruleId": STALE_LOCK,
                "kind": "fail",
                "level": "error",
                "message": {"text": f"The lockfile is stale ({reasons}): {report.refresh_hint()}."},
                "locations": [_location(where, 1)],
                "partialFingerprints": {"rulePropertyHash/v1": _fingerprint(STALE_LOCK, where)},
            }
        )
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL,
                        "version": version(),
                        "rules": _descriptors(),
                    }
                },
                "results": results,
                "properties": {
                    "exitCode": report.exit_code,
                    "summary": report.summary(),
                    "modelSha256": report.model.sha256,
                },
            }
        ],
    }


def render(report: GateReport) -> str:
    return json.dumps(document(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
