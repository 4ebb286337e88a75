"""The GitHub workflow and the pre-commit hooks: lint-clean, current actions, no
SARIF upload where the token cannot write, and hooks that fire on every input
a verdict depends on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checker.report import lock as lockfile
from checker.report import sarif
from checker.report.gate import GateReport, gate
from checker.rules.specs import Rule

from .conftest import ROOT, SPECS, settings_for
from .scenarios import new_regressed


@pytest.fixture
def regressed_report(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> GateReport:
    """The gate over ``scenarios.new_regressed`` in old's own era (v6.4-v6.12, shadow
    MMU), against a lock of that era: there old's [expect] declares a violation
    (precision) that the upload leaves out."""
    settings = settings_for("v6.4-v6.12")
    era_lock = gate(list(shipped_rules.values()), None, settings).updated_lock(lock.versions)
    return gate(
        new_regressed(shipped_rules),
        era_lock,
        settings,
        lock_path=SPECS / lockfile.LOCK_NAME,
        root=ROOT,
    )


WORKFLOW = ROOT / ".github" / "workflows" / "checker-gate.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def actionlint() -> str:
    """The actionlint binary: the venv's (dev extras) or one on PATH. Missing is a
    skip on a developer's machine (the wheel is Linux x86-64 only) and a failure in CI."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing: install the dev extras (make install)")
        pytest.skip("actionlint is not installed (the dev extras have it on Linux x86-64)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_workflow_passes_actionlint(tmp_path: Path) -> None:
    done = lint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    # negative control: actionlint does flag actions still on the node20 runtime
    old = WORKFLOW.read_text().replace("actions/checkout@v7", "actions/checkout@v4")
    (tmp_path / "old.yml").write_text(old)
    done = lint(tmp_path / "old.yml")
    assert done.returncode == 1 and 'runtime "node20" is deprecated' in done.stdout


def test_the_sarif_upload_is_skipped_on_pull_requests_from_forks() -> None:
    """A fork's pull request gets a read-only token, so upload-sarif would fail there."""
    text = WORKFLOW.read_text()
    upload = text[text.index("- name: Upload SARIF") :]
    upload = upload[: upload.index("uses: github/codeql-action/upload-sarif@")]
    condition = " ".join(upload.split())
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "github.event_name != 'pull_request'" in condition
    # the only write permission is the one upload-sarif needs
    writes = re.findall(r"^\s*([\w-]+): write\b", text, re.MULTILINE)
    assert writes == ["security-events"]


def test_the_upload_leaves_out_expected_violations(
    regressed_report: GateReport, tmp_path: Path
) -> None:
    """Code scanning ignores SARIF suppressions, so the workflow's jq filter drops the
    suppressed results (old's and legacy's declared violations) before the upload."""
    jq = shutil.which("jq")
    if jq is None:
        if os.environ.get("CI"):
            pytest.fail("jq is missing (GitHub's runners have it)")
        pytest.skip("jq is not installed")
    [program] = re.findall(
        r"run: jq '([^']+)' gate\.sarif > gate-alerts\.sarif", WORKFLOW.read_text()
    )
    (tmp_path / "gate.sarif").write_text(sarif.render(regressed_report))
    done = subprocess.run(
        [jq, program, str(tmp_path / "gate.sarif")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    uploaded = json.loads(done.stdout)
    kept = [
        (r.get("properties", {}).get("rule"), r["ruleId"]) for r in uploaded["runs"][0]["results"]
    ]
    # old's expected violation is left out; legacy's [expect] is stated for v3.x, so
    # its violations (which the lock records) are not expected ones here
    assert kept == [
        ("legacy", "stale_w"),
        ("legacy", "write_tracking"),
        ("legacy", "precision"),
        ("new", "stale_w"),
        ("new", "write_tracking"),
        ("new", "precision"),
        (None, "stale-lockfile"),
    ]
    everything = json.loads(sarif.render(regressed_report))
    assert uploaded["runs"][0]["tool"] == everything["runs"][0]["tool"]


def test_the_specs_hook_fires_on_the_model_and_the_lock() -> None:
    """A verdict depends on the rule, the model and the pinned toolchain: a change to
    any of them must re-run the gate, not only a change under specs/."""
    text = HOOKS.read_text()
    start = text.index("\n- id: kvm-flush-gate\n")
    hook = text[start : text.index("\n- id: kvm-flush-gate-kernel\n", start)]
    [pattern] = re.findall(r"^\s*files: (.+)$", hook, re.MULTILINE)
    files = re.compile(pattern)
    for changed in [
        "specs/rules/new.toml",
        "specs/verdicts.lock.json",
        "checker/model/__init__.py",
        "checker/engines/semantics.py",
        "pyproject.toml",
        "constraints.txt",
    ]:
        assert files.search(changed), changed
    for unrelated in ["README.md", "tests/test_gate.py", "bench/bench.py", "docs/checker/x"]:
        assert not files.search(unrelated), unrelated


def test_the_specs_hook_gates_the_working_tree_s_checker(tmp_path: Path) -> None:
    """pre-commit runs a hook from the repository's root in its own install of the
    hook repository at ``rev``: the specs hook must run the working tree's
    ``checker/`` (the model being changed), not that install's."""
    import shlex

    text = HOOKS.read_text()
    start = text.index("- id: kvm-flush-gate\n")
    hook = text[start : text.index("\n- id: kvm-flush-gate-kernel\n", start)]
    [entry] = re.findall(r"^\s*entry: (.+)$", hook, re.MULTILINE)
    argv = shlex.split(entry)
    assert argv[-1] == "gate"
    # a working tree whose model differs from the installed one, told by its version
    shutil.copytree(ROOT / "checker", tmp_path / "checker")
    init = tmp_path / "checker" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9-changed-'))
    program = [sys.executable] if argv[0] == "python" else [argv[0]]
    shown = subprocess.run(
        [*program, *argv[1:-1], "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "9.9.9-changed-" in shown.stdout
