"""The one line every run ends with: what the verdicts amount to.

``checker check`` exits 1 whenever a property is violated, which the shipped rules
``old`` and ``legacy`` do by design; the summary line says whether each verdict is
the one the rule's ``[expect]`` table states, so exit 1 with VIOLATED lines reads as
what it is. The same summary, rule names per category, goes into ``--json``
(see :mod:`checker.report.document`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checker.verdict import Verdict

if TYPE_CHECKING:
    from checker.engines.diff import Comparison, Side

#: the categories of a checked rule, in the order the summary line lists them
CATEGORIES = ("holds", "violates_as_expected", "violates", "not_as_expected", "inconclusive")


@dataclass(frozen=True)
class PropertyVerdict:
    """What the summary needs of a checked property."""

    prop: str
    verdict: Verdict
    #: the spec's expectation, if it states one
    expected: Verdict | None = None


@dataclass(frozen=True)
class RuleVerdicts:
    """A rule's verdict on each property."""

    rule: str
    properties: Sequence[PropertyVerdict]


@dataclass(frozen=True)
class Summary:
    """The words for a run's verdicts, and the rule names per category."""

    text: str
    #: every category of :data:`CATEGORIES`, in that order, with its rules' names
    groups: dict[str, list[str]]


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def rule_category(properties: Sequence[PropertyVerdict]) -> tuple[str, list[str]]:
    """A rule's category from its properties' verdicts and expectations, with the
    details the line shows for it.

    A verdict that differs from its expectation makes the rule ``not_as_expected``
    (that wins); then an inconclusive verdict makes it ``inconclusive``; then a
    violation is ``violates_as_expected`` if every violated property is expected to
    be, else ``violates`` (no expectation stated, e.g. ``--expr``).
    """
    mismatches = [
        f"{p.prop} {p.verdict.value} (expected {p.expected.value})"
        for p in properties
        if p.expected is not None
        and p.verdict is not Verdict.INCONCLUSIVE
        and p.verdict is not p.expected
    ]
    undecided = [p.prop for p in properties if p.verdict is Verdict.INCONCLUSIVE]
    violated = [p for p in properties if p.verdict is Verdict.VIOLATED]
    if mismatches:
        return "not_as_expected", mismatches + [f"{name} inconclusive" for name in undecided]
    if undecided:
        return "inconclusive", ["every property"] if len(undecided) == len(
            properties
        ) else undecided
    if not violated:
        return "holds", []
    if all(p.expected is Verdict.VIOLATED for p in violated):
        return "violates_as_expected", []
    return "violates", [p.prop for p in violated]


def check_summary(rules: Sequence[RuleVerdicts], distinct: int | None = None) -> Summary:
    """The summary of ``checker check``'s rules: the line, e.g. ``3 rules: new
    holds; legacy, old violate (as expected)``, and the rule names per category.
    ``distinct``: how many rules they are, if some were checked more than once (in
    each MMU of an era)."""
    found = verdicts(rules)
    count = len(rules) if distinct is None else distinct
    return Summary(f"{_plural(count, 'rule')}: {found.text}", found.groups)


def verdicts(rules: Sequence[RuleVerdicts]) -> Summary:
    """``rules`` per category, and the words for them: ``new holds; legacy, old
    violate (as expected)``."""
    groups: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    details: dict[str, list[str]] = {}
    for rule in rules:
        category, detail = rule_category(rule.properties)
        groups[category].append(rule.rule)
        details[rule.rule] = detail
    # rules of one category with the same details share their words
    phrases: dict[tuple[str, str], list[str]] = {}
    for category in CATEGORIES:
        for name in groups[category]:
            phrases.setdefault((category, _names(details[name])), []).append(name)
    parts = []
    for (category, said), names in phrases.items():
        one = len(names) == 1
        words = {
            "holds": "holds" if one else "hold",
            "violates_as_expected": f"{'violates' if one else 'violate'} (as expected)",
            "violates": f"{'violates' if one else 'violate'} {said}",
            "not_as_expected": f"NOT AS EXPECTED: {said}",
            "inconclusive": f"INCONCLUSIVE: {said}",
        }[category]
        parts.append(f"{_names(names)} {words}")
    return Summary("; ".join(parts), groups)


def diff_summary(comparison: Comparison) -> dict[str, Any]:
    """The summary of ``checker diff``: whether the rules decide alike, and each
    side's unnecessary and missed flushes."""
    a, b = comparison.a, comparison.b
    count = len(comparison.differences)

    def costs(side: Side) -> str:
        n, missed = len(side.unnecessary), len(side.missed)
        return (
            f"{side.name}: {n} unnecessary flush{'' if n == 1 else 'es'}, "
            f"{missed} missed flush{'' if missed == 1 else 'es'}"
        )

    if count == 0:
        text = f"{a.name} and {b.name} decide alike on every reachable update"
    else:
        text = (
            f"{a.name} and {b.name} decide differently on "
            f"{count} update class{'es' if count != 1 else ''}"
        )
    text += f" ({costs(a)}; {costs(b)})"
    return {"text": text, "differences": count, "alike": count == 0}
