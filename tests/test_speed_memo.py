"""Parsed flush conditions kept between runs: a pure memo of the parse, keyed by
every input, ignored when it is anything but this parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.rules import cexpr, memo
from checker.rules.cexpr import CExprError, Origin, ParsedRule
from checker.rules.specs import Rule

from .conftest import SPECS

#: expressions with tests of every kind: calls, masks, comparisons, '!'s, '?:'
EXPRESSIONS = (
    "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
    "(old_spte & PT_WRITABLE_MASK) && !(new_spte & PT_WRITABLE_MASK)",
    "!!is_writable_pte(old_spte) /* two */ || likely((old_spte & PT_WRITABLE_MASK) != 0)",
    "spte_ad_enabled(old_spte) ? is_dirty_spte(old_spte) : false",
    "true",
)


def parses(a: ParsedRule, b: ParsedRule) -> tuple[object, ...]:
    return (a.text, a.formula, a.tests), (b.text, b.formula, b.tests)


def memo_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.json") if "checker.parsed-rule/1" in p.read_text()]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_a_kept_parse_reads_back_as_the_parse(tmp_path: Path, text: str) -> None:
    parsed = cexpr.parse_rule(text, Origin("t"))
    first = memo.parse_rule(text, Origin("t"), tmp_path)
    assert len(memo_files(tmp_path)) == 1
    again = memo.parse_rule(text, Origin("t"), tmp_path)
    a, b = parses(parsed, first)
    assert a == b
    a, b = parses(parsed, again)
    assert a == b
    assert repr(again.formula) == repr(parsed.formula)  # the hints' key reads it


def test_every_shipped_rule_reads_back_as_parsed(
    tmp_path: Path, shipped_rules: dict[str, Rule]
) -> None:
    for rule in shipped_rules.values():
        memo.parse_rule(rule.expression, Origin("t"), tmp_path)
        again = memo.parse_rule(rule.expression, Origin("t"), tmp_path)
        assert rule.parsed_expression is not None
        a, b = parses(rule.parsed_expression, again)
        assert a == b, rule.name


def test_a_kept_parse_is_what_a_second_run_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXPRESSIONS[1]
    memo.parse_rule(text, Origin("t"), tmp_path)

    def refused(*args: object, **kwargs: object) -> ParsedRule:
        raise AssertionError("parsed again")

    monkeypatch.setattr(cexpr, "parse_rule", refused)
    memo.parse_rule(text, Origin("t"), tmp_path)  # read back, not parsed


@pytest.mark.parametrize(
    "change",
    ["text", "checker source", "pycparser version"],
)
def test_another_input_is_another_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    text = EXPRESSIONS[0]
    memo.parse_rule(text, Origin("t"), tmp_path)
    if change == "text":
        text = text + " "
    elif change == "checker source":
        monkeypatch.setattr(memo, "source_sha256", lambda: "1" * 64)
    else:
        monkeypatch.setattr(memo, "pycparser_version", lambda: "0.0-other")
    parsed = []
    real = cexpr.parse_rule
    monkeypatch.setattr(cexpr, "parse_rule", lambda *a: parsed.append(a) or real(*a))
    memo.parse_rule(text, Origin("t"), tmp_path)
    assert len(parsed) == 1
    assert len(memo_files(tmp_path)) == 2


def test_without_a_version_or_a_source_hash_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memo, "pycparser_version", lambda: None)
    memo.parse_rule(EXPRESSIONS[0], Origin("t"), tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(memo, "source_sha256", lambda: None)
    memo.parse_rule(EXPRESSIONS[0], Origin("t"), tmp_path)
    assert not any(tmp_path.iterdir())


def test_pycparsers_version_is_read_without_importing_it() -> None:
    code = (
        "import sys; from checker.rules import memo; v = memo.pycparser_version(); "
        "assert 'pycparser' not in sys.modules; import pycparser; "
        "assert v == pycparser.__version__, v"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_refused_text_is_refused_every_time_and_never_kept(tmp_path: Path) -> None:
    for _ in range(2):
        with pytest.raises(CExprError, match="t:1:"):
            memo.parse_rule("old_spte &&", Origin("t"), tmp_path)
    assert not any(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: "{not json",
        lambda data: json.dumps({**data, "schema": "checker.parsed-rule/0"}),
        lambda data: json.dumps({**data, "key": {**data["key"], "text": "true"}}),
        lambda data: json.dumps({**data, "formula": {"bit": ["old", "no_such_field"]}}),
        lambda data: json.dumps({**data, "formula": {"xor": []}}),
        lambda data: json.dumps({**data, "tests": [{**data["tests"][0], "span": [5, 9999]}]}),
        lambda data: json.dumps({**data, "tests": [{**data["tests"][0], "nots": ["1"]}]}),
        lambda data: json.dumps({**data, "extra": 1}),
        lambda data: "\xff",
    ],
)
def test_a_damaged_memo_is_ignored(tmp_path: Path, damage: object) -> None:
    text = EXPRESSIONS[0]
    parsed = memo.parse_rule(text, Origin("t"), tmp_path)
    [path] = memo_files(tmp_path)
    path.write_text(damage(json.loads(path.read_text())))  # type: ignore[operator]
    again = memo.parse_rule(text, Origin("t"), tmp_path)
    a, b = parses(parsed, again)
    assert a == b


def test_a_memo_that_cannot_be_written_costs_nothing_but_a_parse(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    parsed = memo.parse_rule(EXPRESSIONS[0], Origin("t"), blocker / "memo")
    assert parsed.formula == cexpr.parse_rule(EXPRESSIONS[0], Origin("t")).formula


def _check(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHECKER_CACHE"}
    env["CHECKER_CACHE_DIR"] = str(cache)
    argv = [sys.executable, "-X", "importtime", "-m", "checker", "check", "--rule", "new"]
    return subprocess.run(
        [*argv, "--specs", str(SPECS), "--json", *args], capture_output=True, text=True, env=env
    )


def test_a_second_check_does_not_load_the_c_parser_and_says_the_same(tmp_path: Path) -> None:
    first = _check(tmp_path)
    second = _check(tmp_path)
    uncached = _check(tmp_path / "unused", "--no-cache")
    assert first.returncode == second.returncode == uncached.returncode == 0
    assert first.stdout == second.stdout == uncached.stdout
    assert "pycparser" in first.stderr  # the first run parses
    assert "pycparser" not in second.stderr
    assert "pycparser" in uncached.stderr and not (tmp_path / "unused").exists()
