"""What a warm ``checker check`` of a rule that holds does not load: the C parser
(its parse is kept, checker.rules.memo), the trace view (no trace to show) and
multiprocessing (the forked processes are made with os.fork), and neither Spacer
nor BMC (every invariant comes from a hint and certifies)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import SPECS


def _imported(cache: Path, *args: str) -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if k != "CHECKER_CACHE"}
    env["CHECKER_CACHE_DIR"] = str(cache)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "checker", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done.stdout, modules


def test_a_rule_that_holds_shows_no_trace_and_loads_no_view(tmp_path: Path) -> None:
    _imported(tmp_path, "--rule", "new", "--specs", str(SPECS))
    stdout, modules = _imported(tmp_path, "--rule", "new", "--specs", str(SPECS))
    assert "proofs, for all depths" in stdout
    assert "checker.traces.view" not in modules
    assert "pycparser" not in modules
    assert "checker.engines.forked" in modules and "multiprocessing" not in modules
    assert "checker.engines.certify" in modules
    assert not {"checker.engines.spacer", "checker.engines.bmc"} & modules


def test_a_violation_still_shows_its_trace(tmp_path: Path) -> None:
    args = ("--rule", "old", "--era", "v6.4-v6.12", "--mmu", "shadow", "--specs", str(SPECS))
    stdout, modules = _imported(tmp_path, *args, "--out", str(tmp_path / "out"))
    assert "checker.traces.view" in modules
    assert "shortest trace" in stdout and "step" in stdout
