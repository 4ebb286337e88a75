"""The kernel-history regression suite: ``specs/history``, ``checker history``, and
the traces it commits under ``counterexamples/history``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli
from checker.cli.history import exit_code
from checker.engines.check import PropertyResult
from checker.engines.history import EntryResult, SideResult, Status
from checker.errors import InputError
from checker.rules.history import Entry, load_history
from checker.verdict import Verdict

from .conftest import COUNTEREXAMPLES, ROOT, SPECS

HISTORY = SPECS / "history"
COMMITTED = COUNTEREXAMPLES / "history"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["history", *args])


def specs_copy(tmp_path: Path, keep: tuple[str, ...] | None = None) -> Path:
    """A copy of the shipped specs; with ``keep``, only those history entries (a
    smaller suite runs faster)."""
    copy = tmp_path / "specs"
    shutil.copytree(SPECS, copy)
    if keep is not None:
        for path in (copy / "history").glob("*.toml"):
            if path.stem not in keep:
                path.unlink()
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """The whole suite, run once: its --json result and where its traces went."""
    out = tmp_path_factory.mktemp("history-out")
    return run("--json", "--specs", str(SPECS), "--out", str(out)), out


def test_every_entry_loads_sorted_by_id() -> None:
    entries = load_history(SPECS)
    files = sorted(p.stem for p in HISTORY.glob("*.toml"))
    assert [e.id for e in entries] == files
    assert len(entries) >= 12
    for e in entries:
        assert e.title and e.why
        for _, side in e.sides:
            assert side.paths.mmu is e.mmu
    by_id = {e.id: e for e in entries}
    # the entries that change the rule, and the ones recorded the other way round
    assert (by_id["081976992f43"].before.rule.name, by_id["081976992f43"].after.rule.name) == (
        "old",
        "new",
    )
    assert by_id["198c74f43f0f"].after.rule.name == "old"
    assert by_id["198c74f43f0f-legacy-stale-w"].after.expect is Verdict.VIOLATED


def test_every_entry_is_as_expected(suite: tuple[Result, Path]) -> None:
    result, _ = suite
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "kvm-flush-checker/history/1"
    entries = document["entries"]
    assert [e["id"] for e in entries] == sorted(p.stem for p in HISTORY.glob("*.toml"))
    assert [e["id"] for e in entries if e["status"] != "as expected"] == []
    assert document["summary"] == {
        "as_expected": len(entries),
        "not_as_expected": 0,
        "inconclusive": 0,
    }
    for e in entries:
        for side in (e["before"], e["after"]):
            assert side["verdict"] == side["expected"]
            # a violated side has its shortest trace, written as two files
            assert (side["trace_length"] is not None) == (side["verdict"] == "violated")
            assert len(side["files"]) == (2 if side["verdict"] == "violated" else 0)


def test_the_model_proves_the_tdp_fault_never_clears_mmu_writable(
    suite: tuple[Result, Path],
) -> None:
    """1a175082b190: stale-W coverage holds before v6.13 without the fault's flush,
    and the WARN v6.13 added is unreachable."""
    entries = {e["id"]: e for e in json.loads(suite[0].stdout)["entries"]}
    for name in ("1a175082b190", "1a175082b190-assertion"):
        assert (entries[name]["before"]["verdict"], entries[name]["after"]["verdict"]) == (
            "holds",
            "holds",
        )


def test_the_committed_traces_are_what_the_command_writes(suite: tuple[Result, Path]) -> None:
    """counterexamples/history holds exactly the files the command writes, byte for
    byte (regenerate them with: checker history)."""
    _, out = suite
    written = out / "history"

    def files(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    assert files(written), "the suite wrote no trace"
    assert files(COMMITTED) == files(written)
    differ = [
        p for p in files(written) if (written / p).read_bytes() != (COMMITTED / p).read_bytes()
    ]
    assert differ == [], f"stale committed traces {differ}; regenerate them with: checker history"


@pytest.mark.parametrize(
    "trace",
    [
        pytest.param(
            p.relative_to(ROOT),
            id=str(p.relative_to(COMMITTED)),
        )
        for p in sorted(COMMITTED.rglob("*.json"))
    ],
)
def test_a_committed_trace_shows(trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    shown = CliRunner().invoke(cli, ["show", str(trace), "--no-color"])
    assert shown.exit_code == 0, shown.output
    assert "replayed through the step function" in shown.stdout


def test_a_broken_expectation_exits_1_and_names_the_entry(tmp_path: Path) -> None:
    specs = specs_copy(tmp_path, keep=("1a175082b190", "081976992f43"))
    edit(
        specs / "history" / "1a175082b190.toml",
        'expect_after = "holds"',
        'expect_after = "violated"',
    )
    result = run("--specs", str(specs), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["commit", "rule"]
    row = next(line for line in lines if line.startswith("1a175082b190 "))
    assert row.endswith("NOT AS EXPECTED")
    assert "holds (expected violated)" in row
    assert next(line for line in lines if line.startswith("081976992f43 ")).endswith("as expected")
    assert any(
        line.startswith("1a175082b190: after, rule new in v6.13/tdp: holds, expected violated")
        for line in lines
    )
    assert lines[-1] == "2 entries: 1 as expected, 1 NOT AS EXPECTED"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('era_before = "v6.4-v6.12"', 'era_before = "v9.9"', "era_before"),
        ('rule_after = "new"', 'rule_after = "newest"', "rule_after"),
        ('property = "stale_w"', 'property = "stale"', "property"),
        ('mmu = "tdp"', 'mmu = "ept"', "mmu"),
        ('expect_before = "holds"', 'expect_before = "fine"', "expect_before"),
        ('era_before = "v6.4-v6.12"', 'era_before = "v3.x"', "era_before"),  # no TDP MMU
        ('id = "1a175082b190"', 'id = "1a175082b19"', "id"),
        ('why = """', 'commit = "x"\nwhy = """', "commit"),
    ],
)
def test_a_bad_entry_exits_2_with_one_line(tmp_path: Path, old: str, new: str, field: str) -> None:
    specs = specs_copy(tmp_path)
    entry = specs / "history" / "1a175082b190.toml"
    edit(entry, old, new)
    result = run("--specs", str(specs), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message
    assert message.startswith(f"checker: error: {entry}: field '{field}': ")
    assert not (tmp_path / "out").exists()


def test_a_missing_history_directory_is_a_spec_error(tmp_path: Path) -> None:
    specs = specs_copy(tmp_path)
    shutil.rmtree(specs / "history")
    with pytest.raises(InputError, match="history: no such directory"):
        load_history(specs)


def _entry_result(entry: Entry, before: Verdict, after: Verdict) -> EntryResult:
    def side(name: str, verdict: Verdict) -> SideResult:
        return SideResult(
            name, getattr(entry, name), PropertyResult(entry.prop, verdict, "test"), 0.0
        )

    return EntryResult(entry, side("before", before), side("after", after))


def test_statuses_and_exit_codes() -> None:
    """A side that contradicts its entry is NOT AS EXPECTED (exit 1, over an undecided
    side elsewhere); an undecided side alone is INCONCLUSIVE (exit 3)."""
    entry = next(e for e in load_history(SPECS) if e.id == "7c8a4742c4ab")
    v, h, i = Verdict.VIOLATED, Verdict.HOLDS, Verdict.INCONCLUSIVE
    fine = _entry_result(entry, v, h)
    wrong = _entry_result(entry, h, h)
    undecided = _entry_result(entry, v, i)
    wrong_and_undecided = _entry_result(entry, h, i)
    assert [r.status for r in (fine, wrong, undecided, wrong_and_undecided)] == [
        Status.AS_EXPECTED,
        Status.NOT_AS_EXPECTED,
        Status.INCONCLUSIVE,
        Status.NOT_AS_EXPECTED,
    ]
    cases: list[tuple[list[EntryResult], int]] = [
        ([fine], 0),
        ([fine, undecided], 3),
        ([fine, wrong], 1),
        ([undecided, wrong], 1),
    ]
    for results, code in cases:
        assert exit_code(results) == code


def test_help_lists_the_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = result.stdout
    for code in (
        "0  every entry is as expected",
        "1  some entry is NOT AS EXPECTED",
        "3  inconclusive",
    ):
        assert code in text
