"""What a warm ``checker check`` of a rule that holds does not load: the C parser
(its parse is kept, checker.rules.memo), the trace view (no trace to show) and
multiprocessing (the forked processes are made with os.fork), neither Spacer
nor BMC (every invariant comes from a hint and certifies), nor the explicit
engine, the step function and traces (nothing is explored or replayed); and what
only the report needs is loaded once the forked processes run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.engines import forked

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
    unused = {"checker.engines.explicit", "checker.engines.semantics", "checker.engines.trace"}
    assert not unused & modules


def test_the_explicit_engine_loads_what_it_needs(tmp_path: Path) -> None:
    args = ("--rule", "new", "--engine", "explicit", "--mmu", "shadow", "--specs", str(SPECS))
    stdout, modules = _imported(tmp_path, *args)
    assert "holds        explicit" in stdout
    assert {"checker.engines.explicit", "checker.engines.semantics"} <= modules


def test_a_violation_still_shows_its_trace(tmp_path: Path) -> None:
    args = ("--rule", "old", "--era", "v6.4-v6.12", "--mmu", "shadow", "--specs", str(SPECS))
    stdout, modules = _imported(tmp_path, *args, "--out", str(tmp_path / "out"))
    assert "checker.traces.view" in modules
    assert {"checker.engines.semantics", "checker.engines.trace"} <= modules  # the replay
    assert "shortest trace" in stdout and "step" in stdout


@pytest.mark.skipif(forked.default_jobs() < 2, reason="one core: nothing is forked")
def test_the_report_is_imported_once_the_forked_processes_run(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from checker.engines import forked\n"
        "real = forked._start\n"
        "def start(*args):\n"
        "    print('report loaded:', 'checker.report.document' in sys.modules)\n"
        "    return real(*args)\n"
        "forked._start = start\n"
        "from checker.console import main\n"
        f"sys.argv = ['checker', 'check', '--rule', 'new', '--specs', {str(SPECS)!r}]\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CHECKER_CACHE"}
    env["CHECKER_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    # one MMU forked (the other is decided here meanwhile), before the report
    assert done.stdout.count("report loaded: False") == 1, done.stdout + done.stderr
    assert "1 rule: new [v6.13/shadow], new [v6.13/tdp] hold" in done.stdout
