"""What people and machines read: the summary line every run ends with, progress
on stderr (on a terminal, or when asked), and the JSON documents, checked against
the JSON Schemas the package ships."""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from checker import schemas
from checker.cli import cli
from checker.engines.diff import UpdateClass
from checker.model import Spte
from checker.report.summary import PropertyVerdict, RuleVerdicts, check_summary
from checker.traces import statespace
from checker.verdict import Verdict

from .conftest import ROOT, SPECS

KERNELS = Path(__file__).parent / "fixtures" / "kernels"
#: the gate's tests keep GitHub's annotations out, whatever runs the suite
NOT_GITHUB: dict[str, str | None] = {"GITHUB_ACTIONS": None, "GITHUB_STEP_SUMMARY": None}


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=NOT_GITHUB)


def validate(command: str, document: Any) -> None:
    jsonschema.Draft202012Validator(schemas.load(command)).validate(document)


def rejected(command: str, document: Any, spoil: Callable[[Any], None]) -> None:
    """The negative control: ``document`` spoiled by ``spoil`` fails the schema."""
    broken = copy.deepcopy(document)
    spoil(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(command, broken)


def test_the_shipped_schemas_are_draft_2020_12_and_name_their_version() -> None:
    for command in schemas.VERSIONS:
        schema = schemas.load(command)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["schema"] == {"const": schemas.schema_id(command)}


@pytest.fixture(scope="module")
def check_all(tmp_path_factory: pytest.TempPathFactory) -> Result:
    """``checker check --all --json`` over the shipped specs."""
    out = tmp_path_factory.mktemp("all")
    return invoke("check", "--all", "--json", "--specs", SPECS, "--out", out)


def test_check_json_has_one_shape_for_one_rule_and_for_all(
    tmp_path: Path, check_all: Result
) -> None:
    one = invoke("check", "--rule", "old", "--json", "--specs", SPECS, "--out", tmp_path / "1")
    every = check_all
    assert (one.exit_code, every.exit_code) == (1, 1)
    single, whole = json.loads(one.stdout), json.loads(every.stdout)
    for document in (single, whole):
        validate("check", document)
        assert document["schema"] == "kvm-flush-checker/check/1"
    assert list(single) == list(whole)
    # one entry per MMU of the rule's own era (legacy: v3.x, shadow only)
    assert [(r["rule"], r["era"]) for r in single["rules"]] == [
        ("old", "v6.4-v6.12/shadow"),
        ("old", "v6.4-v6.12/tdp"),
    ]
    assert [(r["rule"], r["era"]) for r in whole["rules"]] == [
        ("legacy", "v3.x/shadow"),
        ("new", "v6.13/shadow"),
        ("new", "v6.13/tdp"),
        ("old", "v6.4-v6.12/shadow"),
        ("old", "v6.4-v6.12/tdp"),
    ]
    assert whole["summary"]["text"] == (
        "3 rules: legacy [v3.x/shadow], new [v6.13/shadow], new [v6.13/tdp], "
        "old [v6.4-v6.12/tdp] hold; old [v6.4-v6.12/shadow] violates (as expected)"
    )
    assert whole["summary"]["violates_as_expected"] == ["old [v6.4-v6.12/shadow]"]
    assert single["summary"]["text"] == (
        "1 rule: old [v6.4-v6.12/tdp] holds; old [v6.4-v6.12/shadow] violates (as expected)"
    )
    rejected("check", single, lambda d: d["rules"][0]["properties"][0].pop("verdict"))
    rejected("check", single, lambda d: d.update(rules=d["rules"][0]))  # the old one-rule shape
    rejected("check", single, lambda d: d.update(schema="kvm-flush-checker/check/0"))


def test_gate_diff_and_extract_json_match_their_schemas(checks: list[str]) -> None:
    gate = invoke("gate", "--specs", SPECS, "--json")
    # in old's own era, where its imprecision shows (KVM v6.4 .. v6.12, shadow MMU)
    diff = invoke("diff", "old", "new", "--era", "v6.4-v6.12", "--json", "--specs", SPECS)
    extract = invoke("extract", KERNELS / "v6.13", "--json")
    assert (gate.exit_code, diff.exit_code, extract.exit_code) == (0, 1, 0), gate.output
    documents = {
        "gate": json.loads(gate.stdout),
        "diff": json.loads(diff.stdout),
        "extract": json.loads(extract.stdout),
    }
    for command, document in documents.items():
        validate(command, document)
        assert document["schema"] == f"kvm-flush-checker/{command}/1"
    assert documents["gate"]["summary"]["text"].startswith("gate: pass: 3 rules re-checked")
    assert documents["diff"]["summary"] == {
        "text": "old and new decide differently on 5 update classes "
        "(old: 2 unnecessary flushes, 0 missed flushes; "
        "new: 0 unnecessary flushes, 0 missed flushes)",
        "differences": 5,
        "alike": False,
    }
    rejected("gate", documents["gate"], lambda d: d["rules"][0]["properties"][0].update(status="?"))
    rejected("diff", documents["diff"], lambda d: d["differences"][0].pop("change"))
    rejected("extract", documents["extract"], lambda d: d.update(line="20"))


#: what only ``check`` writes of a property (its trace's states and files), and
#: only the gate (its columns)
CHECK_ONLY = {"replayed", "initial_state", "steps", "files", "command"}
GATE_ONLY = {"locked", "status", "failed", "warning", "detail"}


def test_check_and_gate_write_rules_and_properties_alike(checks: list[str], tmp_path: Path) -> None:
    """One serializer for both documents: what both say about a rule and each of its
    properties (verdict, expectation, invariant, trace) is written the same way."""
    gate = invoke("gate", "--specs", SPECS, "--json")
    assert gate.exit_code == 0, gate.output
    gated = json.loads(gate.stdout)
    # the check at the lock's era and MMU (v6.13/shadow), as the gate re-checks
    era, mmu = gated["model"]["era"].split("/")
    check = invoke(
        "check",
        "--all",
        "--era",
        era,
        "--mmu",
        mmu,
        "--json",
        "--specs",
        SPECS,
        "--out",
        tmp_path,
    )
    assert check.exit_code == 1, check.output
    checked = json.loads(check.stdout)
    # the same settings (2 vCPUs, depth 30), so the same results
    assert [r["vcpus"] for r in checked["rules"]] == [gated["model"]["vcpus"]] * 3
    assert {r["era"] for r in checked["rules"]} == {gated["model"]["era"]}
    by_name = {r["rule"]: r for r in checked["rules"]}
    assert sorted(by_name) == [r["rule"] for r in gated["rules"]] == ["legacy", "new", "old"]
    seen: set[str] = set()
    for rule in gated["rules"]:
        mine = by_name[rule["rule"]]
        shared = (mine.keys() & rule.keys()) - {"properties"}
        assert shared == {"rule", "expression", "formula", "origin"}
        assert {k: mine[k] for k in shared} == {k: rule[k] for k in shared}
        for a, b in zip(mine["properties"], rule["properties"], strict=True):
            if "expected" not in a:  # no [expect] in this era: check omits it, the
                assert b["expected"] is None  # gate's column says null
                b = {k: v for k, v in b.items() if k != "expected"}
            assert a.keys() - b.keys() <= CHECK_ONLY and b.keys() - a.keys() <= GATE_ONLY
            shared = a.keys() & b.keys()
            assert {k: a[k] for k in shared} == {k: b[k] for k in shared}, a["property"]
            seen |= shared
    assert seen >= {"property", "title", "safety", "verdict", "engine", "expected"}
    assert seen >= {"invariant", "lemmas", "certificate", "all_vcpus", "depth", "vcpus", "actions"}
    # the summary's categories alike too (its text is each command's own last line;
    # check labels each rule with its era and MMU, the gate's are its model's)
    label = f" [{gated['model']['era']}]"
    assert {
        k: [name.removesuffix(label) for name in v]
        for k, v in checked["summary"].items()
        if k != "text"
    } == {k: v for k, v in gated["summary"].items() if k != "text"}


def test_text_runs_end_with_the_summary_line(tmp_path: Path) -> None:
    """(``diff``'s is checked in test_cli's test_diff_old_new, the gate's in test_cli_gate.)"""
    check = invoke(
        "check",
        "--rule",
        "old",
        "--mmu",
        "shadow",
        "--vcpus",
        "1",
        "--specs",
        SPECS,
        "--out",
        tmp_path,
    )
    assert check.exit_code == 1
    assert check.stdout.splitlines()[-1] == "1 rule: old [v6.4-v6.12/shadow] violates (as expected)"
    check = invoke("check", "--rule", "legacy", "--vcpus", "1", "--specs", SPECS, "--out", tmp_path)
    assert check.exit_code == 0
    assert check.stdout.splitlines()[-1] == "1 rule: legacy [v3.x/shadow] holds"
    assert check.stderr == ""  # not a terminal, no --progress


def test_the_summary_says_what_is_not_as_expected_or_inconclusive() -> None:
    holds, violated, inconclusive = Verdict.HOLDS, Verdict.VIOLATED, Verdict.INCONCLUSIVE
    rules = [
        RuleVerdicts("a", [PropertyVerdict("stale_w", holds, violated)]),
        RuleVerdicts(
            "b",
            [PropertyVerdict("stale_w", inconclusive, holds), PropertyVerdict("encoding", holds)],
        ),
        RuleVerdicts("expr", [PropertyVerdict("precision", violated)]),
        RuleVerdicts("c", [PropertyVerdict("precision", violated, violated)]),
        RuleVerdicts("d", [PropertyVerdict("precision", holds, holds)]),
    ]
    summary = check_summary(rules)
    assert summary.text == (
        "5 rules: d holds; c violates (as expected); expr violates precision; "
        "a NOT AS EXPECTED: stale_w holds (expected violated); b INCONCLUSIVE: stale_w"
    )
    assert summary.groups["not_as_expected"] == ["a"] and summary.groups["inconclusive"] == ["b"]


def test_diff_says_what_the_update_did() -> None:
    def spte(*bits: str) -> Spte[bool]:
        names = {"P": "present", "W": "writable", "MW": "mmu_writable", "HW": "host_writable"}
        names |= {"A": "accessed", "D": "dirty", "AT": "access_tracked"}
        return Spte(**{field: abbreviation in bits for abbreviation, field in names.items()})

    def change(old: Spte[bool], new: Spte[bool]) -> str:
        return UpdateClass(old, new, ad_enabled=True).change()

    assert change(spte("P", "W", "MW", "HW"), spte("P", "MW", "HW")) == "W cleared, MW kept"
    assert change(spte("P", "MW", "HW", "A"), spte("P", "MW", "HW")) == "MW kept, A cleared"
    assert change(spte("P", "W", "MW", "HW"), spte("P", "HW")) == "W cleared, MW cleared"
    assert change(spte("P", "HW"), spte("P", "HW", "AT")) == "MW stays clear, AT set"


def test_graph_refuses_dot_graphviz_cannot_lay_out(tmp_path: Path) -> None:
    dot = tmp_path / "new.dot"
    result = invoke("graph", "--rule", "new", "-o", dot, "--specs", SPECS)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    # new in its own era, v6.13, shadow MMU (graph's default)
    assert "1382 states and 18307 steps are more than Graphviz lays out" in line
    assert "write .json or .graphml instead" in line and "--vcpus 1" in line
    # not a way out: the symmetric 2-vCPU graph is over the limit too
    assert "--symmetric" not in line
    assert not dot.exists()
    assert "beyond 5000 steps" in " ".join(invoke("graph", "--help").stdout.split())
    assert str(statespace.DOT_MAX_STEPS) == "5000"


def _stderr_on_a_terminal(*args: str) -> str:
    """What ``checker ARGS`` writes to stderr when stderr is a terminal."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "checker", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=follower,
        )
    finally:
        os.close(follower)
    seen = b""
    try:
        while select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        process.kill() if process.poll() is None else None
    assert process.wait(timeout=60) == 0
    return seen.decode().replace("\r\n", "\n")


def test_progress_goes_to_a_terminal_unless_quiet(tmp_path: Path) -> None:
    args = ["graph", "--rule", "new", "--vcpus", "1", "--specs", str(SPECS)]
    shown = _stderr_on_a_terminal(*args, "-o", str(tmp_path / "a.json"))
    assert shown.splitlines()[0] == "graph: exploring new (1 vCPU) ..."
    assert shown.splitlines()[1].startswith("graph: exploring new (1 vCPU) 626 states")
    assert _stderr_on_a_terminal(*args, "-o", str(tmp_path / "b.json"), "--quiet") == ""


@pytest.mark.parametrize(
    ("stdout", "stderr", "flags", "live_stdout", "shown"),
    [
        (False, True, {}, False, True),  # stderr a terminal
        (False, False, {}, False, False),  # a pipe or a file: asked for only
        (False, False, {"show_progress": True}, False, True),
        (False, True, {"quiet": True}, False, False),
        # check's text verdicts on the same terminal already show each property end
        (True, True, {}, True, False),
        (True, True, {"show_progress": True}, True, True),
        (False, True, {}, True, True),  # check's text goes to a file: progress shows
    ],
)
def test_when_progress_is_shown(
    monkeypatch: pytest.MonkeyPatch,
    stdout: bool,
    stderr: bool,
    flags: dict[str, bool],
    live_stdout: bool,
    shown: bool,
) -> None:
    from checker.cli import progress

    monkeypatch.setattr(progress, "stdout_is_terminal", lambda: stdout)
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: stderr)
    options = {"show_progress": False, "quiet": False} | flags
    assert progress.progress_for(**options, live_stdout=live_stdout).enabled is shown


def test_progress_and_quiet_together_are_a_usage_error(tmp_path: Path) -> None:
    result = invoke("check", "--rule", "new", "--progress", "--quiet", "--specs", SPECS)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "checker: error: --progress and --quiet contradict each other; give one of them"
    ]
