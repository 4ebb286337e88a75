"""The one line every run ends with: what the verdicts amount to.

``checker check`` exits 1 whenever a property is violated, which the shipped rules
``old`` and ``legacy`` do by design; the summary line says whether each verdict is
the one the rule's ``[expect]`` table states, so exit 1 with VIOLATED lines reads as
what it is. The same summary, as values, goes into ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from checker.engines.diff import Comparison, Side

#: the categories of a checked rule, in the order the summary line lists them
CATEGORIES = ("holds", "violates_as_expected", "violates", "not_as_expected", "inconclusive")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def rule_category(properties: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """A rule's category from its properties' JSON entries (``verdict`` and, where
    the spec states one, ``expected``), with the details the line shows for it.

    A verdict that differs from its expectation makes the rule ``not_as_expected``
    (that wins); then an inconclusive verdict makes it ``inconclusive``; then a
    violation is ``violates_as_expected`` if every violated property is expected to
    be, else ``violates`` (no expectation stated, e.g. ``--expr``).
    """
    mismatches = [
        f"{p['property']} {p['verdict']} (expected {p['expected']})"
        for p in properties
        if "expected" in p and p["verdict"] != "inconclusive" and p["verdict"] != p["expected"]
    ]
    undecided = [p["property"] for p in properties if p["verdict"] == "inconclusive"]
    violated = [p for p in properties if p["verdict"] == "violated"]
    if mismatches:
        return "not_as_expected", mismatches + [f"{name} inconclusive" for name in undecided]
    if undecided:
        return "inconclusive", ["every property"] if len(undecided) == len(
            properties
        ) else undecided
    if not violated:
        return "holds", []
    if all(p.get("expected") == "violated" for p in violated):
        return "violates_as_expected", []
    return "violates", [p["property"] for p in violated]


def check_summary(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary of ``checker check``'s rule reports: per category the rule names,
    and the line, e.g. ``3 rules: new holds; legacy, old violate (as expected)``."""
    groups, text = verdicts(reports)
    return {"text": f"{_plural(len(reports), 'rule')}: {text}", **groups}


def verdicts(reports: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[str]], str]:
    """The rules of ``reports`` (each with ``rule`` and ``properties``) per category,
    and the words for them: ``new holds; legacy, old violate (as expected)``."""
    groups: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    details: dict[str, list[str]] = {}
    for report in reports:
        category, detail = rule_category(report["properties"])
        groups[category].append(report["rule"])
        details[report["rule"]] = detail
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
    return groups, "; ".join(parts)


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
