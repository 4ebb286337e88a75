"""A verdict is a ``Verdict`` from the engine's result through the gate and the
lockfile; its word appears only in files, on the command line and in JSON, and is
read back once, where it enters."""

from __future__ import annotations

import ast
import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path

import pytest

from checker.engines.check import Options
from checker.engines.smt import Budget
from checker.report import lock as lockfile
from checker.report.gate import GateReport, gate
from checker.rules.specs import Rule
from checker.verdict import DECIDED, Verdict, decided

from .conftest import ROOT, SPECS
from .test_gate import SETTINGS

WORDS = {v.value for v in Verdict}


def verdict_words(value: object, where: str = "", seen: set[int] | None = None) -> list[str]:
    """Where in ``value`` (dataclasses, mappings and sequences, all the way down) a
    verdict is held as its word rather than as a ``Verdict``."""
    seen = set() if seen is None else seen
    if isinstance(value, str):
        return [where or "(top)"] if value in WORDS else []
    if isinstance(value, enum.Enum) or id(value) in seen:
        return []
    seen.add(id(value))
    children: list[tuple[str, object]] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [(f".{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        for key, item in value.items():
            children += [(f"[{key!r}] (key)", key), (f"[{key!r}]", item)]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(f"[{i}]", item) for i, item in enumerate(value)]
    found = []
    for name, child in children:
        found += verdict_words(child, where + name, seen)
    return found


def test_the_walk_finds_a_word_where_a_verdict_should_be(regressed_report: GateReport) -> None:
    """The negative control: a row whose expectation is a string is found."""
    row = regressed_report.rules[0].properties[0]
    spoiled = dataclasses.replace(row, expected="holds")  # type: ignore[arg-type]
    assert verdict_words(spoiled) == [".expected"]
    assert verdict_words({"verdict": ("x", "violated")}) == ["['verdict'][1]"]


def test_a_verdict_is_read_from_its_word_once_where_it_enters() -> None:
    assert [decided(v.value) for v in DECIDED] == [Verdict.HOLDS, Verdict.VIOLATED]
    for word in ("inconclusive", "HOLDS", "holds ", "", None, 1, ["holds"]):
        with pytest.raises(ValueError, match=r"^expected 'holds' or 'violated', got "):
            decided(word)


def test_rules_and_the_lockfile_hold_verdicts(shipped_rules: dict[str, Rule]) -> None:
    read = lockfile.read(SPECS / lockfile.LOCK_NAME)
    assert read is not None
    assert verdict_words(shipped_rules) == []
    assert verdict_words(read) == []
    assert {p.verdict for r in read.rules.values() for p in r.properties.values()} == {
        Verdict.HOLDS,
        Verdict.VIOLATED,
    }
    # and the word is what the file holds
    assert lockfile.render(read) == (SPECS / lockfile.LOCK_NAME).read_text(encoding="utf-8")


def test_the_gate_holds_verdicts_from_result_to_row_to_lock(
    checks: list[str],
    shipped_rules: dict[str, Rule],
    lock: lockfile.Lock,
    regressed_report: GateReport,
) -> None:
    passed = gate(list(shipped_rules.values()), lock, SETTINGS, root=ROOT)
    # an undecided verdict, allowed, beside the decided ones
    undecided = gate(
        [shipped_rules["new"]],
        lock,
        dataclasses.replace(
            SETTINGS,
            options=dataclasses.replace(SETTINGS.options, budget=Budget(1)),
            allow_inconclusive=True,
        ),
        complete=False,
    )
    assert Verdict.INCONCLUSIVE in {p.verdict for p in undecided.outcomes}
    for report in (passed, regressed_report, undecided):
        assert verdict_words(report) == []
        for row in report.outcomes:
            assert row.verdict is None or isinstance(row.verdict, Verdict)
            assert row.expected is None or isinstance(row.expected, Verdict)
    assert verdict_words(passed.updated_lock({"checker": "0", "z3": "0"})) == []
    assert {p.verdict for p in passed.outcomes} == {Verdict.HOLDS, Verdict.VIOLATED}
    # legacy's and old's [expect] tables are stated for other eras than the lock's v6.13
    assert {p.expected for p in regressed_report.outcomes} == {
        Verdict.HOLDS,
        Verdict.VIOLATED,
        None,
    }


def test_check_and_the_kernel_gate_hold_verdicts(shipped_rules: dict[str, Rule]) -> None:
    from checker.cli.check import check_rule
    from checker.cli.common import resolve_paths
    from checker.cli.gate import _kernel_expectations

    # old in its own era's shadow MMU, where its [expect] applies
    (choice,) = resolve_paths(SPECS, "v6.4-v6.12", "shadow", None, None)
    options = Options(vcpus=1, paths=choice.paths)
    checked = check_rule(shipped_rules["old"], options, choice, None, True, quiet=True)
    assert verdict_words(checked) == []
    assert {p.expected for p in checked.properties} == {Verdict.HOLDS, Verdict.VIOLATED}
    expected = _kernel_expectations(("precision=violated",))
    assert verdict_words(expected) == []
    assert expected["precision"] is Verdict.VIOLATED and expected["stale_w"] is Verdict.HOLDS


def _compares_a_word(node: ast.Compare) -> bool:
    def word(e: ast.expr) -> bool:
        if isinstance(e, ast.Constant):
            return e.value in WORDS
        if isinstance(e, ast.Tuple | ast.List | ast.Set):
            return any(word(x) for x in e.elts)
        # Verdict.HOLDS.value: the word by another spelling
        return (
            isinstance(e, ast.Attribute)
            and e.attr == "value"
            and isinstance(e.value, ast.Attribute)
            and isinstance(e.value.value, ast.Name)
            and e.value.value.id == "Verdict"
        )

    return any(word(e) for e in (node.left, *node.comparators))


def test_no_code_compares_a_verdict_by_its_word() -> None:
    """``verdict == "violated"`` is always False for a ``Verdict``: the enum is
    compared with ``is``, and only ``checker/verdict.py`` reads words."""

    def compare(text: str) -> bool:
        node = ast.parse(text, mode="eval").body
        assert isinstance(node, ast.Compare)
        return _compares_a_word(node)

    assert compare('p.verdict == "violated"') and compare("v != Verdict.HOLDS.value")
    assert compare('word in ("holds", "violated")')
    assert not compare("p.verdict is Verdict.VIOLATED") and not compare('status == "ok"')

    package = ROOT / "checker"
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "verdict.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [
            f"{Path(path).relative_to(ROOT)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Compare) and _compares_a_word(node)
        ]
    assert found == []
