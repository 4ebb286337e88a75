"""Installed anywhere: the wheel carries the specs, and runs outside the checkout.

Builds a wheel of the checkout, installs it with its dependencies from the package
index into a fresh venv (no access to the project's own venv), and runs the
commands a kernel developer would from an unrelated directory. It costs about ten
seconds; it is marked slow: CI runs it (``make test`` with CI set), a plain
``make test`` leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

#: generous: the install downloads z3-solver (tens of MB) unless pip has it cached
INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120


def _run(argv: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    # nothing of the checkout's environment: not its venv, not its sources
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_the_wheel_works_from_any_directory(tmp_path: Path) -> None:
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        elsewhere,
        INSTALL_TIMEOUT,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("kvm_flush_checker-*.whl")
    # a venv without pip of its own (ensurepip is seconds of this test): this
    # environment's pip installs into it, as its own would
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], elsewhere, RUN_TIMEOUT)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        elsewhere,
        INSTALL_TIMEOUT,
    )
    assert installed.returncode == 0, installed.stderr
    checker = str(venv / "bin" / "checker")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([checker, *args], elsewhere, RUN_TIMEOUT)

    version = run("--version")
    assert version.returncode == 0, version.stderr
    lines = version.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["checker", "z3", "Python"]

    rules = run("rules")
    assert rules.returncode == 0, rules.stderr
    site = venv / "lib"
    first = rules.stdout.splitlines()[0]
    assert first.startswith(f"specs: {site}") and "installed with the checker" in first

    for args in (["check", "--rule", "new"], ["check", "--era", "v6.13", "--rule", "new"]):
        result = run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "precision       holds" in result.stdout

    # a violation outside the checkout: the trace is shown, not written
    old = run("check", "--rule", "old")
    assert old.returncode == 1, old.stderr
    assert (
        "add --out DIR to write them, e.g. DIR/old/precision-1vcpus-v6.4-v6.12-shadow.json"
        in old.stdout
    )

    gate = run("gate")
    assert gate.returncode == 0, (gate.stdout, gate.stderr)
    assert gate.stdout.splitlines()[-1] == (
        # the lock is v6.13's shadow MMU, where only new's [expect] applies
        "gate: pass: 3 rules re-checked, lockfile up to date: "
        "new holds; legacy violates stale_w, write_tracking, assertion; old violates assertion"
    )

    # the JSON Schemas of the --json documents are in the wheel
    load = (
        "from checker import schemas; "
        "print(*sorted(schemas.load(c)['$id'] for c in schemas.VERSIONS))"
    )
    shipped = _run([str(venv / "bin" / "python"), "-c", load], elsewhere, RUN_TIMEOUT)
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.split() == [
        f"urn:kvm-flush-checker:schema:{c}:1" for c in ("check", "diff", "extract", "gate", "synth")
    ]

    assert list(elsewhere.iterdir()) == []  # nothing written where it ran


def test_the_package_requires_the_z3_the_lock_was_made_with() -> None:
    """An install must get the z3 that wrote the shipped lockfile and traces:
    pyproject's requirement is the exact pin of constraints.txt."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (required,) = [d for d in project["dependencies"] if d.startswith("z3-solver")]
    (pinned,) = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.startswith("z3-solver")
    ]
    assert required == pinned
