"""Ctrl-C stops a run: exit 130, one line, nothing half-written, never a wrong verdict."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker import interrupt
from checker.engines.encode import Encoding
from checker.engines.smt import Budget, check, new_solver
from checker.errors import Interrupted
from checker.model import PROPERTY_BY_NAME, System
from checker.rules.specs import Rule

from .conftest import ROOT, SPECS


@pytest.fixture
def pressed() -> Iterator[None]:
    """Ctrl-C as the watcher thread sees it, taken back afterwards."""
    interrupt._interrupt()
    yield
    interrupt._requested.clear()


def test_a_solver_call_after_ctrl_c_is_an_interruption_not_an_answer(
    pressed: None, systems: dict[str, System]
) -> None:
    solver = new_solver(Budget())
    with pytest.raises(Interrupted):
        check(solver)


def test_spacer_after_ctrl_c_is_an_interruption_not_inconclusive(
    pressed: None, shipped_rules: dict[str, Rule]
) -> None:
    from checker.engines import spacer

    enc = Encoding(System(shipped_rules["new"]), 1)
    with pytest.raises(Interrupted):
        spacer.prove(enc, PROPERTY_BY_NAME["stale_w"], Budget())


def _digest(path: Path) -> str | None:
    """The bytes of a file, or of every file under a directory; None if absent."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


#: a check slow enough to be interrupted (about 2 s)
SLOW_CHECK = ("check", "--rule", "legacy", "--vcpus", "8", "--engine", "all")
#: when SIGINT is sent to each command, in seconds after its first line of output
#: (few runs: each is a process start)
MOMENTS = {"check": (0.2, 0.5, 1.0), "gate": (0.2,), "update": (0.5, 1.0)}


def test_ctrl_c_stops_check_gate_and_update_with_nothing_written(tmp_path: Path) -> None:
    """A real SIGINT at several moments of a check, a gate and a gate --update, all
    started at once (so that each is still running when signalled; moments count
    from the run's first line of output, past the interpreter's start-up): exit 130,
    one line on stderr besides the gate's progress, no traceback, outputs untouched."""
    stale = json.loads((SPECS / "verdicts.lock.json").read_text())
    del stale["rules"]["new"]  # so that --update would write
    committed = str(SPECS / "verdicts.lock.json")
    runs = []
    for name, moments in MOMENTS.items():
        for i, moment in enumerate(moments):
            out, junit, lock = (tmp_path / f"{name}{i}{suffix}" for suffix in ("", ".xml", ".json"))
            lock.write_text(json.dumps(stale))
            args, output = {
                "check": ([*SLOW_CHECK, "--out", str(out)], out),
                "gate": (["gate", "--progress", "--lock", committed, "--junit", str(junit)], junit),
                "update": (["gate", "--progress", "--update", "--lock", str(lock)], lock),
            }[name]
            process = subprocess.Popen(
                [sys.executable, "-m", "checker", *args, "--specs", str(SPECS)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            runs.append((name, moment, process, output, _digest(output)))
    deadlines = []
    for name, moment, process, *_ in runs:
        # check prints its rule on stdout first; the gate its progress on stderr
        first = process.stdout if name == "check" else process.stderr
        assert first is not None and first.readline()
        deadlines.append((time.monotonic() + moment, process))
    signalled = set()
    for deadline, process in sorted(deadlines, key=lambda d: d[0]):
        time.sleep(max(0.0, deadline - time.monotonic()))
        if process.poll() is None:  # a run that already ended has nothing to stop
            process.send_signal(signal.SIGINT)
            signalled.add(name_of(runs, process))
    stopped = set()
    for name, moment, process, output, before in runs:
        _, stderr = process.communicate(timeout=60)
        if process.returncode in (0, 1) and "interrupted" not in stderr:
            continue  # it ended before the signal came
        about = f"{name} interrupted after {moment}s: {stderr}"
        assert process.returncode == 130, about
        assert "Traceback" not in stderr, about
        lines = [line for line in stderr.splitlines() if not line.startswith("gate: ")]
        assert lines == ["checker: interrupted"], about
        assert _digest(output) == before, about
        stopped.add(name)
    assert stopped == {"check", "gate", "update"}, signalled


def name_of(
    runs: list[tuple[str, float, subprocess.Popen[str], Path, str | None]], process: object
) -> str:
    return next(name for name, _, p, *_ in runs if p is process)


def _sigint_caught(pid: int) -> bool:
    """The process has a SIGINT handler: the interpreter is up (Linux's /proc)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _before_the_checker(returncode: int, stderr: str) -> bool:
    """The signal came before the checker could take it: in the interpreter's own
    start-up (site, runpy, the launcher's first import), which no handler of ours
    can cover. The CLI is imported only once the handler is in place, so anything
    that went through ``checker/cli`` is not that."""
    return returncode != 130 and f"{os.sep}checker{os.sep}cli" not in stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_ctrl_c_while_the_cli_is_imported_is_130_and_one_line() -> None:
    """A SIGINT a few milliseconds into the process, while Python imports click and
    the CLI: not a KeyboardInterrupt traceback, not a death by the signal. Both ways
    in: the console script and `python -m checker`. Delays count from when the
    interpreter can take a signal at all (about 10 ms before the checker's first
    line); a signal that still lands in the interpreter's own start-up is retried."""
    script = Path(sys.executable).parent / "checker"
    launchers = [[sys.executable, "-m", "checker"]]
    if script.exists():
        launchers.append([sys.executable, str(script)])
    for launcher in launchers:
        for delay in (0.015, 0.03, 0.05):
            moment = delay
            for _ in range(10):
                process = subprocess.Popen(
                    [*launcher, "rules", "--specs", str(SPECS)],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                deadline = time.monotonic() + 10
                while not _sigint_caught(process.pid) and time.monotonic() < deadline:
                    time.sleep(0.0005)
                time.sleep(moment)
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=30)
                if process.returncode == 0:
                    moment /= 2  # it finished first: try again, earlier
                elif _before_the_checker(process.returncode, stderr):
                    moment += 0.005  # the interpreter was still starting: later
                else:
                    break
            about = f"{launcher} SIGINT at {moment}s: {process.returncode} {stderr}"
            assert process.returncode == 130, about
            assert stderr.splitlines() == ["checker: interrupted"], about


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_second_ctrl_c_stops_at_once_without_raising() -> None:
    """Two presses before the run reaches a check point: exit 130 and the one line,
    no KeyboardInterrupt (which inside z3's destructors prints "Exception ignored")."""
    done = _python(
        "import signal\n"
        "from checker import interrupt\n"
        "with interrupt.handling():\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    print('went on')\n"
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "checker: interrupted\n")


def test_ctrl_c_after_the_run_is_still_130_and_one_line() -> None:
    """A SIGINT after the run gave SIGINT back, while the process exits: the
    command's handler is still there (not Python's default: a traceback, a death by
    the signal)."""
    done = _python(
        "import signal, sys\n"
        "import checker.cli\n"
        "run = checker.cli.main\n"
        "def late(argv=None):\n"
        f"    code = run(['rules', '--specs', {str(SPECS)!r}])\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    return code\n"
        "checker.cli.main = late\n"
        "from checker.console import main\n"
        "sys.exit(main())\n"
    )
    assert (done.returncode, done.stderr) == (130, "checker: interrupted\n")
    assert "rules:" in done.stdout  # what was printed before is all there


def test_a_second_ctrl_c_while_files_are_written_waits_for_the_set(tmp_path: Path) -> None:
    """Between the renames of a set of files: not the abrupt stop, which would
    leave one file of the set without the other; the run stops right after."""
    done = _python(
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from checker import files, interrupt\n"
        "rename = os.replace\n"
        "def replace(source, target):\n"
        "    rename(source, target)\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "os.replace = replace\n"
        f"out = Path({str(tmp_path)!r})\n"
        "with interrupt.handling():\n"
        "    files.write_together([(out / 'a.json', 'a'), (out / 'b.json', 'b')])\n"
        "    print('written')\n"
        "    interrupt.check()\n"
    )
    assert done.stdout == "written\n"
    assert "Interrupted" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
