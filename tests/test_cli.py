"""The command line: exit codes, pure-JSON stdout, one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from checker import schemas
from checker.cli import COMMANDS, cli
from checker.engines import check as check_module

from .conftest import ROOT, SPECS


def run(*args: str, out: Path | None = None) -> Result:
    argv = list(args)
    if args and args[0] == "check":
        argv += ["--specs", str(SPECS)]
        if out is not None:
            argv += ["--out", str(out)]
    return CliRunner().invoke(cli, argv)


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_new_holds_exit_0(tmp_path: Path) -> None:
    result = run("check", "--rule", "new", out=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("holds") >= 5
    assert "forall v: tlb_writable[v] => mmu_writable && present" in result.stdout
    assert not any(tmp_path.iterdir())  # nothing violated, nothing written


def test_old_violates_precision_exit_1(tmp_path: Path) -> None:
    """In its own era (v6.4-v6.12), on the shadow MMU only: the TDP MMU has no
    prefetch refresh that keeps MW."""
    result = run("check", "--rule", "old", out=tmp_path)
    assert result.exit_code == 1
    assert "precision       VIOLATED" in result.stdout
    assert (
        "reproduce: checker check --rule old --vcpus 1 --era v6.4-v6.12 --mmu shadow"
        in result.stdout
    )
    assert result.stdout.splitlines()[-1] == (
        "1 rule: old [v6.4-v6.12/tdp] holds; old [v6.4-v6.12/shadow] violates (as expected)"
    )
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [
        "precision-1vcpus-v6.4-v6.12-shadow.graphml",
        "precision-1vcpus-v6.4-v6.12-shadow.json",
    ]


def only_rule(result: Result) -> dict[str, Any]:
    """The report of the one rule a ``check --json`` run checked (the document is
    valid under the shipped schema)."""
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(schemas.load("check")).validate(document)
    [report] = document["rules"]
    assert isinstance(report, dict)
    return report


def reports_by_label(result: Result) -> dict[str, dict[str, Any]]:
    """The reports of a ``check --json`` run, one per rule and era/MMU, by label."""
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator(schemas.load("check")).validate(document)
    return {f"{r['rule']} [{r['era']}]": r for r in document["rules"]}


def test_json_stdout_is_pure_and_progress_goes_to_stderr(tmp_path: Path) -> None:
    # legacy out of its own era (v3.x, where it holds everything): v6.4 .. v6.12
    result = run(
        "check", "--rule", "legacy", "--era", "v6.4-v6.12", "--mmu", "shadow", "--json",
        "--progress", out=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 1
    document = only_rule(result)
    verdicts = {p["property"]: p["verdict"] for p in document["properties"]}
    assert verdicts == {
        "stale_w": "violated",
        "write_tracking": "violated",
        "dirty_log": "holds",
        "encoding": "holds",
        "precision": "violated",
        "assertion": "holds",
    }
    assert document["exit_code"] == 1 and document["vcpus"] == 2
    assert document["era"] == "v6.4-v6.12/shadow"
    tracking = next(p for p in document["properties"] if p["property"] == "write_tracking")
    assert tracking["depth"] == 5 and tracking["replayed"]
    assert [s["operation"] for s in tracking["steps"]][-2:] == ["write_protect", "guest_write"]
    assert "legacy: write_tracking ..." in result.stderr.splitlines()
    assert json.loads(result.stdout)["summary"]["text"] == (
        "1 rule: legacy [v6.4-v6.12/shadow] violates stale_w, write_tracking, precision"
    )
    # in its own era legacy holds everything, as its spec expects
    own = run("check", "--rule", "legacy", "--json", out=tmp_path)
    assert own.exit_code == 0
    report = only_rule(own)
    assert report["era"] == "v3.x/shadow"
    assert {p["verdict"] for p in report["properties"]} == {"holds"}


def test_json_is_deterministic(tmp_path: Path) -> None:
    first = run("check", "--rule", "old", "--json", out=tmp_path)
    second = run("check", "--rule", "old", "--json", out=tmp_path)
    assert second.stdout == first.stdout
    # stderr is not a terminal here, and progress was not asked for: nothing
    assert first.stderr == ""


def test_expr_checks_an_adhoc_rule(tmp_path: Path) -> None:
    result = run(
        "check",
        "--expr",
        "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
        "--json",
        out=tmp_path,
    )
    assert result.exit_code == 0
    # no era of its own: v6.13, each MMU of it
    assert set(reports_by_label(result)) == {"expr [v6.13/shadow]", "expr [v6.13/tdp]"}


def test_all_checks_every_rule(tmp_path: Path) -> None:
    result = run("check", "--all", "--json", out=tmp_path)
    assert result.exit_code == 1
    # each in its own era, on each MMU of it
    assert list(reports_by_label(result)) == [
        "legacy [v3.x/shadow]",
        "new [v6.13/shadow]",
        "new [v6.13/tdp]",
        "old [v6.4-v6.12/shadow]",
        "old [v6.4-v6.12/tdp]",
    ]


def test_exhausted_budget_is_inconclusive_exit_3(tmp_path: Path) -> None:
    # 1000 units decide 'assertion' (an induction); 100 decide nothing
    result = run("check", "--rule", "new", "--rlimit", "100", out=tmp_path)
    assert result.exit_code == 3
    assert "INCONCLUSIVE" in result.stdout and "holds " not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rule", "nope"), "unknown rule 'nope' (known: legacy, new, old)"),
        (("--rule", "new", "--vcpus", "0"), "Invalid value for '--vcpus'"),
        (("--rule", "new", "--vcpus", "100000"), "Invalid value for '--vcpus'"),
        (("--rule", "new", "--depth", "0"), "Invalid value for '--depth'"),
        (
            ("--rule", "new", "--expr", "true"),
            "give exactly one of --rule NAME, --expr C, --kernel PATH or --all",
        ),
        ((), "give exactly one of"),
        (("--expr", "is_writable_pte(old)"), "--expr:1:17: unknown identifier 'old'"),
        (("--rule", "new", "--bogus"), "No such option '--bogus'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run("check", *args, out=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in one_line_error(result)
    assert result.stdout == ""
    assert not any(tmp_path.iterdir())


def test_unwritable_out_is_exit_2_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("check", "--rule", "legacy", out=blocker / "sub")
    assert result.exit_code == 2
    assert "cannot write there" in one_line_error(result)
    assert result.stdout == ""


def test_malformed_spec_is_exit_2_naming_file_and_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (
        (SPECS / "rules" / "new.toml").read_text().replace('precision = "holds"', "precision = 1")
    )
    (rules / "new.toml").write_text(text)
    result = CliRunner().invoke(cli, ["check", "--rule", "new", "--specs", str(tmp_path)])
    assert result.exit_code == 2
    assert "new.toml: field 'expect.precision'" in one_line_error(result)


def test_check_reads_only_the_rule_and_era_asked_for(tmp_path: Path) -> None:
    """A malformed rule or era file fails the commands that read it (--all, an
    unknown name: all are read to list them), not a check of another rule or era."""
    shutil.copytree(SPECS, tmp_path, dirs_exist_ok=True)
    (tmp_path / "rules" / "broken.toml").write_text("name = 1\n")
    (tmp_path / "eras" / "v1.0.toml").write_text("name = 1\n")
    specs = ["--specs", str(tmp_path), "--mmu", "shadow", "--vcpus", "1"]
    assert CliRunner().invoke(cli, ["check", "--rule", "new", *specs]).exit_code == 0
    for args in (["--all"], ["--rule", "nosuch"], ["--rule", "new", "--era", "v0.1"]):
        result = CliRunner().invoke(cli, ["check", *args, *specs])
        assert result.exit_code == 2, args
        assert "broken.toml" in result.stderr or "v1.0.toml" in result.stderr, args


def test_internal_errors_are_one_line_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(check_module, "check_property", boom)
    result = run("check", "--rule", "new", out=tmp_path)
    assert result.exit_code == 4
    line = one_line_error(result)
    assert "internal error: RuntimeError: the engine broke" in line and "--debug" in line
    debug = CliRunner().invoke(
        cli, ["--debug", "check", "--rule", "new", "--specs", str(SPECS), "--out", str(tmp_path)]
    )
    assert debug.exit_code == 4 and "Traceback" in debug.stderr


def test_check_prints_the_same_in_one_process_and_in_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both MMUs of a rule's era decided in this process, then in a forked one and
    this one (where there are two cores): the same stdout, exit code and trace
    files."""
    from checker.engines import forked

    real = check_module.check_property
    log = tmp_path / "pids"

    def logged(*args: Any, **kwargs: Any) -> Any:
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(check_module, "check_property", logged)
    seen = []
    for jobs in (1, 2):
        monkeypatch.setattr(forked, "default_jobs", lambda jobs=jobs: jobs)
        log.write_text("")
        out = tmp_path / f"out{jobs}"
        result = run("check", "--rule", "old", "--json", out=out)
        files = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        seen.append((result.exit_code, result.stdout.replace(str(out), "OUT"), files))
        pids = set(log.read_text().split())
        if jobs == 1 or len(os.sched_getaffinity(0)) < 2:
            assert pids == {str(os.getpid())}
        else:
            # one MMU forked, the other (the last task) decided here meanwhile
            assert len(pids) == 2 and str(os.getpid()) in pids
    assert seen[0] == seen[1]
    assert seen[0][0] == 1 and seen[0][2]  # old violates a property: traces were written


def test_help_documents_the_exit_codes() -> None:
    for args in ([], ["check"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        for code in (
            "0  every property holds",
            "1  a violation",
            "2  usage or spec error",
            "3  inconclusive",
            "4  internal error",
        ):
            assert code in result.stdout


def test_every_command_documents_ctrl_c_and_a_closed_pipe() -> None:
    for args in ([], *([name] for name in COMMANDS)):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Exit codes:" in result.stdout, args
        for code in ("130  interrupted by Ctrl-C", "141  the reader of stdout"):
            assert code in result.stdout, (args, code)


def test_rules_lists_the_shipped_rules() -> None:
    result = CliRunner().invoke(cli, ["rules", "--specs", str(SPECS)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"specs: {SPECS} (the checkout's)"
    eras = lines.index("eras (--era):")
    first = lines.index("rules:") + 1
    assert [line.split()[0] for line in lines[first:eras]] == ["legacy", "new", "old"]
    listed = [line.split()[0] for line in lines[eras + 1 :] if line.strip()]
    assert {"v3.x", "v4.10-v5.6", "v6.0-v6.1", "v6.4-v6.12", "v6.13"} <= set(listed)
    assert "default" not in listed


def test_python_dash_m_and_lazy_imports() -> None:
    """`python -m checker` works, and --help loads neither z3 nor networkx."""
    code = (
        "import sys, runpy; sys.argv = ['checker', '--help']\n"
        "try:\n    runpy.run_module('checker', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('z3', 'networkx', 'pycparser') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: checker" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "checker", "check", "--rule", "new", "--specs", str(SPECS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_eras_and_path_overrides(tmp_path: Path) -> None:
    # the shadow MMU before b64d740ea7dd (v6.0): enabling logging flushed iff the rule
    # asked on some SPTE it write-protected
    result = run("check", "--rule", "new", "--era", "v4.10-v5.6", "--json", out=tmp_path)
    assert result.exit_code == 1
    document = only_rule(result)  # the era has the shadow MMU only
    assert document["era"] == "v4.10-v5.6/shadow"
    assert document["paths"]["enable_flush"] == "rule"
    lost = next(p for p in document["properties"] if p["property"] == "dirty_log")
    assert lost["verdict"] == "violated"
    assert "expected" not in lost  # expectations are stated for the rule's own era
    assert lost["command"] == ("checker check --rule new --vcpus 1 --era v4.10-v5.6 --mmu shadow")
    assert lost["files"][0].endswith("dirty_log-1vcpus-v4.10-v5.6-shadow.json")
    overridden = run("check", "--rule", "new", "--harvest-flush", "changed", "--json", out=tmp_path)
    assert overridden.exit_code == 1
    assert set(reports_by_label(overridden)) == {
        "new [v6.13/shadow+harvest_flush=changed]",
        "new [v6.13/tdp+harvest_flush=changed]",
    }
    one = run(
        "check", "--rule", "new", "--mmu", "tdp", "--harvest-flush", "changed", "--json",
        out=tmp_path,
    )  # fmt: skip
    assert only_rule(one)["era"] == "v6.13/tdp+harvest_flush=changed"


def test_unknown_era_is_exit_2(tmp_path: Path) -> None:
    result = run("check", "--rule", "new", "--era", "v9", out=tmp_path)
    assert result.exit_code == 2
    assert (
        "unknown era 'v9' (known: v3.x, v3.15-v4.3, v4.4-v4.9, v4.10-v5.6, v5.7-v5.9, "
        "v5.10-v5.13, v5.14, v5.15-v5.16, v5.17, v5.18-v5.19, v6.0-v6.1, v6.2-v6.3, "
        "v6.4-v6.12, v6.13)"
    ) in one_line_error(result)
    result = run("check", "--rule", "new", "--harvest-flush", "sometimes", out=tmp_path)
    assert result.exit_code == 2 and "Invalid value for '--harvest-flush'" in one_line_error(result)


# --- rules as C: --expr, --kernel, extract, diff --------------------------------------------

KERNELS = Path(__file__).parent / "fixtures" / "kernels"


@pytest.mark.parametrize("name", ["old", "new", "legacy"])
def test_expr_gives_the_same_verdicts_as_the_name(tmp_path: Path, name: str) -> None:
    # the same era and MMU for both: an expression has no era of its own
    where = ("--era", "v6.4-v6.12", "--mmu", "shadow", "--json")
    by_name = only_rule(run("check", "--rule", name, *where, out=tmp_path))
    text = by_name["expression"]
    by_expr = only_rule(run("check", "--expr", text, *where, out=tmp_path))
    verdicts = [(p["property"], p["verdict"], p.get("depth")) for p in by_name["properties"]]
    assert verdicts == [
        (p["property"], p["verdict"], p.get("depth")) for p in by_expr["properties"]
    ]


def test_extract_prints_the_rule_with_file_and_line() -> None:
    result = CliRunner().invoke(cli, ["extract", str(KERNELS / "v6.12")])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].endswith("arch/x86/kvm/mmu/mmu.c:17: mmu_spte_update()")
    assert lines[1].endswith(
        "mmu.c:31: is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)"
    )
    assert lines[-1].startswith(
        "rule: (is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte))"
    )
    document = json.loads(
        CliRunner().invoke(cli, ["extract", str(KERNELS / "v6.13"), "--json"]).stdout
    )
    assert document["function"] == "leaf_spte_change_needs_tlb_flush" and document["line"] == 20


def test_check_kernel_checks_the_tree_s_rule(tmp_path: Path) -> None:
    result = run("check", "--kernel", str(KERNELS / "v3.x"), "--json", out=tmp_path)
    # the fixture has no top Makefile to name its release: today's era, v6.13
    reports = reports_by_label(result)
    assert set(reports) == {"kernel [v6.13/shadow]", "kernel [v6.13/tdp]"}
    document = reports["kernel [v6.13/shadow]"]
    assert document["rule"] == "kernel"
    assert document["expression"] == "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"
    tracking = next(p for p in document["properties"] if p["property"] == "write_tracking")
    assert tracking["verdict"] == "violated"
    assert tracking["command"] == (
        f"checker check --kernel {KERNELS / 'v3.x'} --vcpus 1 --era v6.13 --mmu shadow"
    )


def test_bad_kernel_paths_are_exit_2(tmp_path: Path) -> None:
    for args in (
        ["extract", str(tmp_path)],
        ["extract", str(tmp_path / "nope")],
        ["check", "--kernel", str(tmp_path), "--specs", str(SPECS)],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, args
        one_line_error(result)


def test_diff_old_new(tmp_path: Path) -> None:
    # old's own era, where the prefetch refresh acts on its answer
    where = ("--era", "v6.4-v6.12", "--specs", str(SPECS))
    result = run("diff", "old", "new", *where)
    assert result.exit_code == 1
    assert "paths: v6.4-v6.12/shadow" in result.stdout
    assert "unnecessary       2      0" in result.stdout
    assert "update classes decided differently" in result.stdout
    # what each unnecessary flush's update did, not one fixed phrase for all
    assert "old: flush: UNNECESSARY (MW kept, AT set)" in result.stdout
    assert "old: flush: UNNECESSARY (W cleared, MW kept, AT set)" in result.stdout
    assert "MMU-writable stays set" not in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "old and new decide differently on 5 update classes "
        "(old: 2 unnecessary flushes, 0 missed flushes; "
        "new: 0 unnecessary flushes, 0 missed flushes)"
    )
    # v6.13 (the default): no prefetch refresh, so no caller acts on a difference
    today = run("diff", "old", "new", "--specs", str(SPECS))
    assert today.exit_code == 1 and "paths: v6.13/shadow" in today.stdout
    assert "(old: 0 unnecessary flushes, 0 missed flushes;" in today.stdout
    document = json.loads(run("diff", "old", "new", "--json", *where).stdout)
    assert document["era"] == "v6.4-v6.12/shadow"
    assert document["a"]["unnecessary"] > 0 and document["b"]["unnecessary"] == 0
    first = document["differences"][0]
    assert first["a"].startswith("flush") and first["b"].startswith("no flush")
    assert first["witness"]["steps"][-1]["operation"] in (
        "prefetch",
        "aging",
        "harvest",
        "enable_dirty_logging",
    )


def test_diff_operands_can_be_exprs_and_kernels(tmp_path: Path) -> None:
    same = run("diff", "legacy", "--kernel", str(KERNELS / "v3.x"), "--specs", str(SPECS))
    assert same.exit_code == 0 and "decide alike on every reachable update" in same.stdout
    text = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
    assert run("diff", "new", "--expr", text, "--specs", str(SPECS)).exit_code == 0
    for args in (["diff", "old"], ["diff", "old", "new", "legacy"]):
        result = run(*args, "--specs", str(SPECS))
        assert result.exit_code == 2 and "give two rules to compare" in one_line_error(result)


# --- stdout that cannot be written: a closed pipe, a full disk, a closed descriptor ------


def _checker(*args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "checker", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def test_a_reader_that_goes_away_is_a_quiet_exit_141(tmp_path: Path) -> None:
    """`checker check ... | head -1`: not exit 1 (a violation), no message."""
    process = _checker(
        "check",
        "--rule",
        "new",
        "--specs",
        str(SPECS),
        "--out",
        str(tmp_path),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("rule new:")
    process.stdout.close()  # the verdicts come later, after z3's work
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (141, "")
    # `2>&1 | head -1`: the progress on stderr meets the closed pipe
    progress = _checker(
        "check",
        "--rule",
        "new",
        "--json",
        "--progress",
        "--specs",
        str(SPECS),
        "--out",
        str(tmp_path),
        stdout=subprocess.DEVNULL,
    )
    assert progress.stderr is not None
    assert progress.stderr.readline().startswith("new: stale_w")
    progress.stderr.close()
    assert progress.wait(timeout=60) == 141


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_and_a_closed_one_are_one_line_errors() -> None:
    with open("/dev/full", "w") as full:
        process = _checker("rules", "--specs", str(SPECS), stdout=full)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.splitlines() == [
        "checker: error: cannot write to stdout: No space left on device; "
        "free space or redirect stdout"
    ]
    closed = _checker("rules", "--specs", str(SPECS), preexec_fn=lambda: os.close(1))
    _, stderr = closed.communicate(timeout=60)
    assert closed.returncode == 2
    assert stderr.splitlines() == [
        "checker: error: stdout is closed; redirect it (e.g. >/dev/null) instead of closing it"
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("option", ["--version", "--help"])
def test_top_level_help_and_version_meet_full_and_closed_stdout(option: str) -> None:
    """They print from click's eager callbacks, before any command runs: a full disk
    is the one-line error (exit 2), a reader that went away a quiet 141."""
    with open("/dev/full", "w") as full:
        process = _checker(option, stdout=full)
        _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr.splitlines()) == (
        2,
        [
            "checker: error: cannot write to stdout: No space left on device; "
            "free space or redirect stdout"
        ],
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        process = _checker(option, stdout=write_end)
        _, stderr = process.communicate(timeout=60)
    finally:
        os.close(write_end)
    assert (process.returncode, stderr) == (141, "")


# --- messages ------------------------------------------------------------------------------


def test_rules_prints_nothing_on_stdout_when_it_fails(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    result = CliRunner().invoke(cli, ["rules", "--specs", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no rule files" in one_line_error(result)


def test_debug_shows_no_traceback_for_bad_input(tmp_path: Path) -> None:
    """--debug is for internal errors: an input error stays one line."""
    result = CliRunner().invoke(
        cli, ["--debug", "check", "--expr", "is_dirty(old_spte)", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown" in one_line_error(result)


def test_bare_checker_prints_a_short_usage_exit_2() -> None:
    """No command is a usage error: a few lines on stderr, not the whole help."""
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "usage: checker [--debug] COMMAND [ARGS]...",
        "commands: check, diff, export, export-model, extract, gate, graph, history, list, "
        "rules, scenario, show, synth",
        "checker: error: no command given; see 'checker --help' or 'checker COMMAND --help'",
    ]


def test_one_vcpu_is_singular_in_the_proofs() -> None:
    """Spacer searches with one vCPU first: the proofs say so in the singular, and
    a check with one vCPU certifies "at 1 vCPU"."""
    two = run("check", "--rule", "new", "--mmu", "shadow")
    assert two.exit_code == 0, two.output
    assert "certified at 2 vCPUs (" in two.output
    assert "    stale_w (found with 1 vCPU):\n" in two.output
    one = run("check", "--rule", "new", "--mmu", "shadow", "--vcpus", "1")
    assert one.exit_code == 0, one.output
    assert "certified at 1 vCPU (" in one.output and "found with" not in one.output
