"""The gate's report where GitHub Actions shows it: annotations and the step summary.

* :func:`annotation_commands`: one workflow command per failing (rule, property),
  ``::error file=<rule file>,line=<expression line>,title=<status: property>::<message>``,
  a ``::warning`` per warning, and an ``::error`` on the lockfile when it is stale.
  Data is escaped ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``; property values
  also ``:`` -> ``%3A`` and ``,`` -> ``%2C`` (as ``@actions/core`` does).
* :func:`step_summary`: Markdown for ``$GITHUB_STEP_SUMMARY``: the verdict table,
  then for each failure its trace as a table and the reproduce command, then the
  lockfile's state.

The caller decides whether to emit them (``GITHUB_ACTIONS=true``) and where.
"""

from __future__ import annotations

from checker.report.gate import GateReport, PropertyOutcome, RuleOutcome
from checker.traces import view
from checker.verdict import Verdict


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **properties: str | int) -> str:
    """``::kind key=value,...::message``, escaped."""
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return (
        f"::{kind} {props}::{escape_data(message)}"
        if props
        else f"::{kind}::{escape_data(message)}"
    )


def _message(outcome: RuleOutcome, p: PropertyOutcome) -> str:
    lines = [f"rule {outcome.rule.name}: {p.prop.name} {p.status.value}: {p.detail}"]
    if p.result is not None and p.result.trace is not None:
        lines.append("trace: " + ", ".join(_actions(p)))
    lines.append(f"reproduce: {outcome.command}")
    return "\n".join(lines)


def _actions(p: PropertyOutcome) -> list[str]:
    from checker.report.lock import action_labels

    assert p.result is not None and p.result.trace is not None
    return action_labels(p.result.trace)


def annotation_commands(report: GateReport) -> list[str]:
    found = []
    for outcome in report.rules:
        rule = outcome.rule
        where: dict[str, str | int] = {}
        if rule.path is not None:
            where = {"file": report.display(rule.path), "line": rule.line}
        for p in outcome.properties:
            if p.failed or p.warning:
                title = f"{p.status.value}: {p.prop.name} ({rule.name})"
                kind = "error" if p.failed else "warning"
                found.append(command(kind, _message(outcome, p), **where, title=title))
    if report.stale:
        message = "\n".join(["the lockfile is stale:", *report.stale, report.refresh_hint()])
        where = {"title": "stale lockfile"}
        if report.lock_path is not None:
            where = {"file": report.display(report.lock_path), "line": 1, **where}
        found.append(command("error", message, **where))
    return found


def _word(verdict: Verdict | None) -> str:
    return verdict.value if verdict is not None else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _table(rows: list[list[str]]) -> list[str]:
    header, *body = rows
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in body)
    return lines


def step_summary(report: GateReport) -> str:
    code = report.exit_code
    verdict = "pass" if code == 0 else f"FAIL (exit {code})"
    lines = [f"## KVM TLB-flush gate: {verdict}", "", report.summary(), ""]
    rows = [["rule", "property", "verdict", "expected", "locked", "status"]]
    for outcome in report.rules:
        for p in outcome.properties:
            status = p.status.value
            rows.append(
                [
                    outcome.rule.name,
                    p.prop.name,
                    _word(p.verdict),
                    _word(p.expected),
                    _word(p.locked.verdict if p.locked is not None else None),
                    f"**{status}**" if p.failed else status,
                ]
            )
    lines += _table(rows)
    for outcome in report.rules:
        rule = outcome.rule
        for p in outcome.properties:
            if not (p.failed or p.warning):
                continue
            lines += ["", f"### {rule.name}: {p.prop.name} {p.status.value}", "", p.detail, ""]
            where = f" (`{report.display(rule.path)}` line {rule.line})" if rule.path else ""
            lines += [f"Rule: `{rule.expression}`{where}", ""]
            lines += [f"Property: {p.prop.statement}", ""]
            if p.result is not None and p.result.trace is not None:
                table = view.step_table(p.result.trace, rule.expression)
                lines += [*_table(view.table_cells(table)), ""]
            lines.append(f"Reproduce: `{outcome.command}`")
    if report.stale:
        lines += ["", "### The lockfile is stale", ""]
        lines += [f"- {reason}" for reason in report.stale]
        lines += ["", f"To refresh it, {report.refresh_hint()}."]
    return "\n".join(lines) + "\n"
