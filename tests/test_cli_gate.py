"""``checker gate`` end to end on scratch copies of specs/: each outcome, each output."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from checker import schemas
from checker.cli import cli

from .conftest import SPECS
from .scenarios import LEGACY, git, scratch_repository

LOCK = "verdicts.lock.json"


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    # the suite itself may run under GitHub Actions: keep its annotations out
    clean: dict[str, str | None] = {"GITHUB_ACTIONS": None, "GITHUB_STEP_SUMMARY": None}
    return CliRunner().invoke(cli, ["gate", *args], env={**clean, **(env or {})})


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A scratch copy of specs/ (rules, eras and the lockfile)."""
    copy = tmp_path / "specs"
    shutil.copytree(SPECS, copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_the_shipped_specs_pass(checks: list[str]) -> None:
    result = run("--specs", str(SPECS), "--progress")
    assert result.exit_code == 0, result.output
    assert last_line(result) == (
        "gate: pass: 3 rules re-checked, lockfile up to date: "
        "new holds; legacy violates stale_w, write_tracking, assertion; old violates assertion"
    )
    assert "new     stale_w         holds     holds     holds     ok" in result.stdout
    assert "gate: legacy: stale_w ..." in result.stderr.splitlines()
    ended = [line for line in result.stderr.splitlines() if " stale_w violated" in line]
    assert [line.rsplit(" ", 1)[0] for line in ended] == ["gate: legacy: stale_w violated (ok)"]


def test_pass_on_a_scratch_copy_and_layout_does_not_matter(checks: list[str], specs: Path) -> None:
    assert run("--specs", str(specs)).exit_code == 0
    edit(
        specs / "rules" / "new.toml",
        'expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"',
        'expression = """\nis_mmu_writable_spte(old_spte) &&  /* MW cleared */\n'
        '    !is_mmu_writable_spte(new_spte)\n"""',
    )
    result = run("--specs", str(specs))
    assert result.exit_code == 0, result.output


def test_a_safety_regression_exits_1(checks: list[str], specs: Path) -> None:
    new = specs / "rules" / "new.toml"
    edit(new, "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)", LEGACY)
    # editing the expectation does not bless the regression
    edit(new, 'stale_w = "holds"', 'stale_w = "violated"')
    result = run("--specs", str(specs))
    assert result.exit_code == 1, result.output
    assert "new     stale_w         VIOLATED  violated  holds     REGRESSED" in result.stdout
    assert "new: stale_w REGRESSED: holds in the lock, now violated in 4 steps" in result.stdout
    assert f"  rule: {LEGACY} ({new.as_posix()}:2)" in result.stdout
    step = next(line for line in result.stdout.splitlines() if line.startswith("    4 ✗   "))
    assert step.split()[2:4] == ["sync_spte(!guest_writable)", "FNAME(sync_spte)"]
    assert (
        f"reproduce: checker check --rule new --vcpus 2 --era v6.13 --mmu shadow --specs {specs}"
        in result.stdout
    )
    assert last_line(result).startswith("gate: FAIL (exit 1): REGRESSED new: stale_w")
    assert "the lockfile is also stale" in last_line(result)


def test_a_changed_expression_with_the_same_verdicts_is_a_stale_lock(
    checks: list[str], specs: Path
) -> None:
    edit(
        specs / "rules" / "new.toml",
        "!is_mmu_writable_spte(new_spte)",
        "!(new_spte & shadow_mmu_writable_mask)",
    )
    result = run("--specs", str(specs))
    assert result.exit_code == 2, result.output
    lock = specs / LOCK
    assert f"the lockfile {lock.as_posix()} is stale:" in result.stdout
    assert "  - rule new: expression changed" in result.stdout
    # the refresh named is the one that refreshes this lock: with its --specs, and
    # without 'make lock', which only knows the checkout's own specs
    assert last_line(result) == (
        "gate: FAIL (exit 2): the lockfile is stale; "
        f"run 'checker gate --update --specs {specs}' and commit {lock.as_posix()}"
    )
    # refreshing it makes the gate pass, and a second refresh changes nothing
    updated = run("--specs", str(specs), "--update")
    assert updated.exit_code == 0, updated.output
    assert last_line(updated) == f"gate: wrote {lock.as_posix()}; commit it"
    first = lock.read_bytes()
    assert first != (SPECS / LOCK).read_bytes()
    again = run("--specs", str(specs), "--update")
    assert last_line(again) == f"gate: {lock.as_posix()} is up to date"
    assert lock.read_bytes() == first
    assert run("--specs", str(specs)).exit_code == 0


def test_update_refuses_the_lockfile_installed_with_the_checker(
    specs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed checker's lock is the project's: refreshing it in site-packages
    would bless verdicts nobody reviews."""
    import checker.rules.specs

    monkeypatch.setattr(checker.rules.specs, "packaged_specs", lambda: specs)
    before = (specs / LOCK).read_bytes()
    result = run("--specs", str(specs), "--update")
    assert result.exit_code == 2, result.output
    assert one_line_error(result) == (
        "checker: error: --update would rewrite the lockfile installed with the checker "
        f"({specs}); copy that specs directory and pass --specs DIR, or run it in the "
        "project's checkout"
    )
    assert (specs / LOCK).read_bytes() == before


def test_a_changed_model_hash_is_a_stale_lock(checks: list[str], specs: Path) -> None:
    data = json.loads((specs / LOCK).read_text())
    data["model"]["sha256"] = "0" * 64
    (specs / LOCK).write_text(json.dumps(data))
    result = run("--specs", str(specs))
    assert result.exit_code == 2
    assert "the model changed (encoding sha256 000000000000 -> " in result.stdout


def test_a_new_rule_violating_its_expectation_exits_1(checks: list[str], specs: Path) -> None:
    text = (specs / "rules" / "new.toml").read_text()
    text = text.replace('name = "new"', 'name = "eager"')
    text = text.replace("is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)", LEGACY)
    (specs / "rules" / "eager.toml").write_text(text)
    result = run("--specs", str(specs))
    assert result.exit_code == 1, result.output
    assert "eager   stale_w         VIOLATED  holds     -         VIOLATES EXPECTATION" in (
        result.stdout
    )
    assert "eager: stale_w VIOLATES EXPECTATION: violated in 4 steps; eager.toml's [expect]" in (
        result.stdout
    )
    assert "  - rule eager: new (not in the lock)" in result.stdout


def test_inconclusive_exits_1_or_warns_with_allow_inconclusive(
    checks: list[str], specs: Path
) -> None:
    result = run("--specs", str(specs), "--rlimit", "100")
    assert result.exit_code == 1
    assert "INCONCLUSIVE" in result.stdout and "holds     ok" not in result.stdout
    assert "lockfile is also stale" not in last_line(result)
    allowed = run("--specs", str(specs), "--rlimit", "100", "--allow-inconclusive")
    assert allowed.exit_code == 0, allowed.output
    assert "warnings:" in allowed.stdout
    assert last_line(allowed) == (
        "gate: pass: 3 rules re-checked, 18 warnings, lockfile up to date: "
        "legacy, new, old INCONCLUSIVE: every property"
    )
    refused = run("--specs", str(specs), "--rlimit", "100", "--allow-inconclusive", "--update")
    assert refused.exit_code == 1
    assert "inconclusive verdicts cannot be locked" in last_line(refused)


def test_update_refuses_to_bless_a_regression(checks: list[str], specs: Path) -> None:
    before = (specs / LOCK).read_bytes()
    edit(
        specs / "rules" / "old.toml",
        "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
        LEGACY,
    )
    result = run("--specs", str(specs), "--update")
    assert result.exit_code == 1
    # old's [expect] is stated for its own era (v6.4-v6.12), not the gate's v6.13
    assert "old     stale_w         VIOLATED  -         holds     REGRESSED" in result.stdout
    assert last_line(result).startswith(
        f"gate: --update refused, {(specs / LOCK).as_posix()} left untouched: the gate fails"
    )
    assert (specs / LOCK).read_bytes() == before
    as_json = run("--specs", str(specs), "--update", "--json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    jsonschema.Draft202012Validator(schemas.load("gate")).validate(document)
    assert document["exit_code"] == 1 and not document["update"]["written"]
    assert document["update"]["refused"].startswith("the gate fails")
    assert (specs / LOCK).read_bytes() == before


def test_update_writes_the_shipped_lock(checks: list[str], specs: Path) -> None:
    (specs / LOCK).unlink()
    missing = run("--specs", str(specs))
    assert missing.exit_code == 2 and "  - there is no lockfile" in missing.stdout
    assert run("--specs", str(specs), "--update").exit_code == 0
    written, shipped = (json.loads((d / LOCK).read_text()) for d in (specs, SPECS))
    # the versions are information only; a z3 upgrade alone must not fail this test
    written.pop("versions"), shipped.pop("versions")
    assert written == shipped
    text = (specs / LOCK).read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_changed_since_with_nothing_changed_rechecks_nothing(
    checks: list[str], tmp_path: Path
) -> None:
    repo = scratch_repository(tmp_path, SPECS)
    specs = repo / "specs"
    result = run("--specs", str(specs), "--changed-since", "HEAD")
    assert result.exit_code == 0, result.output
    assert checks == []
    assert last_line(result) == (
        "gate: pass: 0 rules re-checked (3 unchanged since HEAD), lockfile up to date"
    )
    assert "new     stale_w         -        holds     holds     not re-checked" in result.stdout

    # a rule file edited since HEAD (here only its summary): that rule alone
    edit(specs / "rules" / "old.toml", "Sound, but", "Sound but")
    assert run("--specs", str(specs), "--changed-since", "HEAD").exit_code == 0
    assert set(checks) == {"old"}
    git(repo, "commit", "-qam", "reword")
    checks.clear()
    assert run("--specs", str(specs), "--changed-since", "HEAD~1").exit_code == 0
    assert set(checks) == {"old"}
    checks.clear()

    # the lockfile itself was edited: nothing in it is trusted, everything is re-checked
    data = json.loads((specs / LOCK).read_text())
    data["versions"]["z3"] = "0.0"
    (specs / LOCK).write_text(json.dumps(data))
    assert run("--specs", str(specs), "--changed-since", "HEAD").exit_code == 0
    assert sorted(set(checks)) == ["legacy", "new", "old"]
    checks.clear()

    # the model differs from the lock's: everything is re-checked
    data["model"]["sha256"] = "f" * 64
    (specs / LOCK).write_text(json.dumps(data))
    result = run("--specs", str(specs), "--changed-since", "HEAD")
    assert result.exit_code == 2
    assert sorted(set(checks)) == ["legacy", "new", "old"]


def test_changed_since_bad_revision_or_no_repository_exits_2(
    checks: list[str], tmp_path: Path, specs: Path
) -> None:
    repo = scratch_repository(tmp_path, SPECS)
    result = run("--specs", str(repo / "specs"), "--changed-since", "no-such-rev")
    assert result.exit_code == 2
    assert "--changed-since no-such-rev: unknown revision" in one_line_error(result)
    result = run("--specs", str(specs), "--changed-since", "HEAD")
    assert result.exit_code == 2
    assert "is not in a git repository" in one_line_error(result)
    assert checks == [] and result.stdout == ""


def test_junit_sarif_and_json_outputs(checks: list[str], specs: Path, tmp_path: Path) -> None:
    edit(
        specs / "rules" / "new.toml",
        "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
        LEGACY,
    )
    out = tmp_path / "reports"
    result = run(
        "--specs",
        str(specs),
        "--junit",
        str(out / "gate.xml"),
        "--sarif",
        str(out / "gate.sarif"),
        "--json",
    )
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # stdout is pure JSON
    jsonschema.Draft202012Validator(schemas.load("gate")).validate(document)
    assert document["exit_code"] == 1
    assert document["lock"]["stale"][0] == "rule new: expression changed"
    new = next(r for r in document["rules"] if r["rule"] == "new")
    stale_w = next(p for p in new["properties"] if p["property"] == "stale_w")
    assert stale_w["status"] == "REGRESSED" and stale_w["failed"] and stale_w["depth"] == 4
    assert result.stderr == ""  # no progress unless stderr is a terminal or it is asked for
    root = ET.parse(out / "gate.xml").getroot()
    assert root.get("tests") == "19" and root.get("failures") == "4"
    sarif = json.loads((out / "gate.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert sorted(p.name for p in out.iterdir()) == ["gate.sarif", "gate.xml"]


def test_github_annotations_and_step_summary(
    checks: list[str], specs: Path, tmp_path: Path
) -> None:
    edit(
        specs / "rules" / "old.toml",
        "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
        LEGACY,
    )
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = run("--specs", str(specs), env=env)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("::error ")]
    assert len(errors) == 3  # stale_w, write_tracking and the stale lockfile
    assert errors[0].startswith(
        f"::error file={(specs / 'rules' / 'old.toml').as_posix()},line=2,"
        "title=REGRESSED%3A stale_w (old)::rule old: stale_w REGRESSED"
    )
    assert "::" not in result.stdout
    text = summary.read_text()
    assert text.startswith("earlier step\n## KVM TLB-flush gate: FAIL (exit 1)")
    assert "| old | stale_w | violated | - | holds | **REGRESSED** |" in text
    # outside GitHub Actions, neither is written
    quiet = run("--specs", str(specs), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert "::error" not in quiet.stderr and summary.read_text() == text


@pytest.mark.parametrize("option", ["--junit", "--sarif"])
def test_an_unwritable_output_exits_2_before_any_work(
    checks: list[str], specs: Path, tmp_path: Path, option: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("--specs", str(specs), option, str(blocker / "sub" / "out"))
    assert result.exit_code == 2
    assert f"{option} {blocker}/sub/out: cannot write there" in one_line_error(result)
    assert checks == [] and result.stdout == ""
    result = run("--specs", str(specs), option, str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in one_line_error(result)


def test_an_unwritable_step_summary_exits_2_before_any_work(
    checks: list[str], specs: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(blocker / "summary.md")}
    result = run("--specs", str(specs), env=env)
    assert result.exit_code == 2
    assert "$GITHUB_STEP_SUMMARY" in one_line_error(result)
    assert checks == []


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda s: (s / LOCK).write_text("{"), (), "not a lockfile: invalid JSON"),
        (
            lambda s: (s / "rules" / "bad.toml").write_text('name = "bad"\n'),
            (),
            "bad.toml: field 'expression': missing",
        ),
        (lambda s: None, ("--update", "--changed-since", "HEAD"), "drop --changed-since"),
        (lambda s: None, ("--rlimit", "0"), "Invalid value for '--rlimit'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    checks: list[str], specs: Path, setup: object, args: tuple[str, ...], message: str
) -> None:
    setup(specs)  # type: ignore[operator]
    result = run("--specs", str(specs), *args)
    assert result.exit_code == 2, result.output
    assert message in one_line_error(result)
    assert result.stdout == "" and checks == []


def test_help_documents_the_gate_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["gate", "--help"])
    assert result.exit_code == 0
    for text in (
        "0  pass",
        "1  gate failure",
        "2  the lockfile is stale",
        "4  internal error",
        "Exit code 3 is not used by the gate.",
        "checker gate --update",
        "make lock",
    ):
        assert text in result.stdout


def test_the_shipped_workflow_and_hook_run_the_gate() -> None:
    from .conftest import ROOT

    workflow = (ROOT / ".github" / "workflows" / "checker-gate.yml").read_text()
    code = [line.split("#")[0] for line in workflow.splitlines()]
    # a required check must never be skipped by a path filter
    assert not any("paths" in line for line in code)
    assert "fetch-depth: 0" in workflow and "security-events: write" in workflow
    assert "checker gate" in workflow and "--sarif gate.sarif" in workflow
    assert "github/codeql-action/upload-sarif@" in workflow
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    for text in ("id: kvm-flush-gate", "entry: python -m checker gate", "pass_filenames: false"):
        assert text in hooks
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make gate")


# --- --kernel: a kernel tree's own rule --------------------------------------------------

KERNELS = Path(__file__).parent / "fixtures" / "kernels"


def test_a_kernel_tree_passes_when_every_property_holds(tmp_path: Path) -> None:
    result = run("--kernel", str(KERNELS / "v6.13"))
    assert result.exit_code == 0, result.output
    assert last_line(result) == "gate: pass: 1 rule re-checked (no lockfile compared): kernel holds"
    assert "kernel  precision       holds" in result.stdout
    # no lockfile compared: JUnit has no lockfile test either
    junit = tmp_path / "kernel.xml"
    assert run("--kernel", str(KERNELS / "v6.13"), "--junit", str(junit)).exit_code == 0
    suites = [suite.get("name") for suite in ET.parse(junit).getroot()]
    assert suites == ["rule kernel"]


def test_a_kernel_tree_that_lost_a_flush_fails_where_its_rule_is(tmp_path: Path) -> None:
    sarif = tmp_path / "out.sarif"
    result = run("--kernel", str(KERNELS / "v3.x"), "--sarif", str(sarif))
    assert result.exit_code == 1
    assert "VIOLATES EXPECTATION kernel: stale_w, kernel: write_tracking" in last_line(result)
    assert f"reproduce: checker check --kernel {KERNELS / 'v3.x'} --vcpus 2" in result.stdout
    document = json.loads(sarif.read_text())
    locations = {
        (
            r["ruleId"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in document["runs"][0]["results"]
    }
    assert ("stale_w", "tests/fixtures/kernels/v3.x/arch/x86/kvm/mmu.c", 43) in locations


def test_expect_adjusts_what_a_kernel_rule_must_keep() -> None:
    # the fixture has no Makefile: its era is named (a v6.12 tree, v6.4-v6.12)
    tree = str(KERNELS / "v6.12")
    era = ("--era", "v6.4-v6.12")
    assert run("--kernel", tree, *era).exit_code == 1  # old + A/D clauses: imprecise
    assert run("--kernel", tree, *era, "--expect", "precision=violated").exit_code == 0


def test_a_kernel_rule_can_be_locked(tmp_path: Path) -> None:
    lock = tmp_path / "kernel.lock.json"
    tree = str(KERNELS / "v6.13")
    assert run("--kernel", tree, "--lock", str(lock)).exit_code == 2  # no lockfile yet
    assert run("--kernel", tree, "--lock", str(lock), "--update").exit_code == 0
    assert run("--kernel", tree, "--lock", str(lock)).exit_code == 0
    # the v3.x rule under the v6.13 lock: its safety regressed
    assert run("--kernel", str(KERNELS / "v3.x"), "--lock", str(lock)).exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expect", "precision=holds"], "--expect goes with --kernel"),
        (["--kernel", "KERNEL", "--expect", "speed=holds"], "--expect speed=holds: expected"),
        (
            ["--kernel", "KERNEL", "--expect", "precision=inconclusive"],
            "--expect precision=inconclusive: expected PROPERTY=holds|violated",
        ),
        (["--kernel", "KERNEL", "--changed-since", "HEAD"], "drop it with --kernel"),
        (["--kernel", "KERNEL", "--update"], "--update with --kernel needs --lock FILE"),
        (["--kernel", "/nowhere"], "no such file or directory"),
    ],
)
def test_kernel_usage_errors(args: list[str], message: str) -> None:
    args = [str(KERNELS / "v6.13") if a == "KERNEL" else a for a in args]
    result = run(*args)
    assert result.exit_code == 2
    assert message in one_line_error(result)
