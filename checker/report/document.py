"""The JSON documents of ``checker check --json`` and ``checker gate --json``.

Both describe the same things, and this module writes each of them one way for
both: a rule (:func:`rule_json`), a property's verdict with its evidence
(:func:`property_json`: the certified invariant, the exploration, the trace), the
summary (:func:`summary_json`) and a verdict itself (:func:`verdict_json`: in a
document, a :class:`~checker.verdict.Verdict` becomes its word only there).
``check`` adds the settings of each rule's run and each trace's states and files;
the gate adds its columns per property (``expected``, ``locked``, ``status``, ...),
the lockfile and the model. The shapes are the shipped schemas
``checker/schemas/check.schema.json`` and ``gate.schema.json``.

Nothing here prints: the documents are values, :func:`render` their text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checker.report.summary import Summary
from checker.schemas import schema_id
from checker.verdict import Verdict

if TYPE_CHECKING:
    from checker.engines.check import Options, PropertyResult
    from checker.model import Property
    from checker.report.gate import GateReport, PropertyOutcome
    from checker.rules.specs import Rule
    from checker.traces.graph import TraceGraph


def verdict_json(verdict: Verdict | None) -> str | None:
    """``"holds"``, ``"violated"``, ``"inconclusive"``; None for no verdict."""
    return verdict.value if verdict is not None else None


def summary_json(summary: Summary) -> dict[str, Any]:
    """The run's last line as ``text`` and the rule names per category."""
    return {"text": summary.text, **summary.groups}


def rule_json(rule: Rule) -> dict[str, Any]:
    """What a rule is: its name, its C text and its formula in model terms, and
    where it comes from."""
    from checker.rules import formula

    return {
        "rule": rule.name,
        "expression": rule.expression,
        "formula": formula.render(rule.formula),
        "origin": rule.origin,
    }


def _property_head(prop: Property) -> dict[str, Any]:
    return {"property": prop.name, "title": prop.title, "safety": prop.safety}


def property_json(
    result: PropertyResult,
    expected: Verdict | None,
    trace: TraceGraph | None = None,
    files: Sequence[str] = (),
) -> dict[str, Any]:
    """A property's verdict, the expectation if one is stated, and the evidence:
    the certified invariant of a proof, the explicit engine's exploration, a
    violation's length, vCPUs and actions, and the reason of an undecided or
    noteworthy verdict. ``trace``, the violation's trace as its files hold it, adds
    its states and steps, its ``files`` and the command that reproduces it."""
    entry = _property_head(result.prop)
    entry["verdict"] = verdict_json(result.verdict)
    entry["engine"] = result.engine
    if expected is not None:
        entry["expected"] = verdict_json(expected)
    if result.proof is not None:
        proof = result.proof
        entry["invariant"] = proof.invariant.render()
        entry["lemmas"] = proof.invariant.to_json()
        entry["invariant_found_with_vcpus"] = proof.found_with
        cert = proof.certificate
        entry["certificate"] = {
            "vcpus": cert.vcpus,
            "initiation": cert.initiation.value,
            "consecution": cert.consecution.value,
            "safety": cert.safety.value,
        }
        if proof.all_vcpus is not None:
            every = proof.all_vcpus
            entry["all_vcpus"] = {
                "holds": every.ok,
                "initiation": every.initiation.value,
                "consecution": every.consecution.value,
                "safety": every.safety.value,
                **({"reason": every.reason} if every.reason else {}),
            }
    if result.exploration is not None:
        entry["exploration"] = {
            "vcpus": result.exploration.vcpus,
            "states": result.exploration.raw_states,
            "states_up_to_symmetry": result.exploration.reduced_states,
        }
    if result.trace is not None:
        from checker.report.lock import action_labels

        entry["depth"] = result.trace.depth
        entry["vcpus"] = result.trace.vcpus
        entry["actions"] = action_labels(result.trace)
        if trace is not None:
            entry["replayed"] = True
            entry["initial_state"] = trace.nodes[0]
            entry["steps"] = [
                {"step": i, **trace.edges[i - 1, i], "state": trace.nodes[i]}
                for i in range(1, len(trace.nodes))
            ]
            entry["files"] = list(files)
            entry["command"] = trace.graph["command"]
    if result.reason:
        entry["reason"] = result.reason
    return entry


# --- checker check ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedProperty:
    """A property of a checked rule, as ``checker check`` reports it."""

    result: PropertyResult
    #: the rule's expectation under these paths (None: none stated)
    expected: Verdict | None = None
    #: a violation's trace as its files hold it (None: no trace)
    trace: TraceGraph | None = None
    #: the files the trace was written to
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckedRule:
    """One rule's run of ``checker check``."""

    rule: Rule
    #: the paths' label: a era name, plus any overrides
    era: str
    options: Options
    properties: tuple[CheckedProperty, ...]

    @property
    def exit_code(self) -> int:
        from checker.engines.check import exit_code

        return exit_code([p.result for p in self.properties])


def check_summary(rules: Sequence[CheckedRule]) -> Summary:
    """``checker check``'s last line and its categories."""
    from checker.report.summary import PropertyVerdict, RuleVerdicts, check_summary

    return check_summary(
        [
            RuleVerdicts(
                f"{r.rule.name} [{r.era}]",
                [
                    PropertyVerdict(p.result.prop.name, p.result.verdict, p.expected)
                    for p in r.properties
                ],
            )
            for r in rules
        ],
        len({r.rule.name for r in rules}),
    )


def check_json(rules: Sequence[CheckedRule]) -> dict[str, Any]:
    """The document of ``checker check --json``: one shape for one rule and for
    many (schema ``check``)."""
    return {
        "schema": schema_id("check"),
        "exit_code": max(r.exit_code for r in rules),
        "summary": summary_json(check_summary(rules)),
        "rules": [checked_rule_json(r) for r in rules],
    }


def checked_rule_json(checked: CheckedRule) -> dict[str, Any]:
    """A rule, the settings it was checked with, and every property."""
    from checker import version
    from checker.engines.smt import z3_version
    from checker.rules.specs import paths_table

    options = checked.options
    return {
        **rule_json(checked.rule),
        "era": checked.era,
        "paths": paths_table(options.paths),
        "vcpus": options.vcpus,
        "depth_bound": options.depth,
        "checker_version": version(),
        "z3_version": z3_version(),
        "exit_code": checked.exit_code,
        "properties": [
            property_json(p.result, p.expected, p.trace, p.files) for p in checked.properties
        ],
    }


# --- checker gate ----------------------------------------------------------------------


@dataclass(frozen=True)
class LockUpdate:
    """What ``checker gate --update`` did."""

    #: why the lockfile was not refreshed; None if it was allowed to be
    refused: str | None
    written: bool

    @property
    def exit_code(self) -> int:
        """``--update`` succeeds (0) by writing the lock, or is refused (1)."""
        return 1 if self.refused is not None else 0


def gate_json(report: GateReport, update: LockUpdate | None = None) -> dict[str, Any]:
    """The document of ``checker gate --json`` (schema ``gate``); ``update`` is
    what ``--update`` did, if it was given."""
    document: dict[str, Any] = {
        "schema": schema_id("gate"),
        "exit_code": report.exit_code if update is None else update.exit_code,
        "summary": summary_json(Summary(report.summary(), report.verdicts().groups)),
        "lock": {
            "path": report.display(report.lock_path) if report.lock_path else None,
            "stale": list(report.stale),
            "refresh": report.refresh_hint() if report.stale else None,
        },
        "model": report.model.to_json(),
        "since": report.since,
        "allow_inconclusive": report.settings.allow_inconclusive,
        "rules": [
            {
                **rule_json(outcome.rule),
                "file": (
                    report.display(outcome.rule.path) if outcome.rule.path is not None else None
                ),
                "line": outcome.rule.line,
                "rechecked": outcome.rechecked,
                "command": outcome.command,
                "properties": [gate_row_json(p) for p in outcome.properties],
            }
            for outcome in report.rules
        ],
    }
    if update is not None:
        document["update"] = {"refused": update.refused, "written": update.written}
    return document


def gate_row_json(row: PropertyOutcome) -> dict[str, Any]:
    """A (rule, property) row of the gate: the property as :func:`property_json`
    writes it (only the property's name and ``verdict`` null when the rule was not
    re-checked), and the gate's columns, each always present: ``expected`` and
    ``locked`` are null where there is none."""
    if row.result is not None:
        entry = property_json(row.result, row.expected)
    else:
        entry = {**_property_head(row.prop), "verdict": None}
    entry.update(
        {
            "expected": verdict_json(row.expected),
            "locked": verdict_json(row.locked.verdict if row.locked is not None else None),
            "status": row.status.value,
            "failed": row.failed,
            "warning": row.warning,
            "detail": row.detail,
        }
    )
    return entry


def render(document: Mapping[str, Any], sort_keys: bool = False) -> str:
    """A document's text, two-space indented, without a final newline (the CLI
    prints it as a line). ``checker check`` keeps the order written here (a
    property's name and verdict first); the gate sorts its keys, as its lockfile."""
    return json.dumps(document, indent=2, sort_keys=sort_keys)
