"""What a short run spends around its work: z3's main context is made on another
core while the engines are imported (``smt.make_main_context_ahead``), and the
process ends without Python's tear-down (``process.leave``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import SPECS


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_leave_flushes_what_was_printed_and_skips_the_tear_down() -> None:
    done = _python(
        """
        import atexit, sys
        from checker.process import leave
        atexit.register(lambda: print("torn down"))
        print("printed", end="")
        sys.stderr.write("warned")
        leave(5)
        print("after")
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (5, "printed", "warned")


def test_leave_returns_when_the_output_cannot_be_flushed() -> None:
    # Python then ends as usual, and reports what it must: its own flush fails too,
    # and it exits 120
    done = _python(
        """
        import sys
        from checker.process import leave
        class Broken:
            def write(self, text): return len(text)
            def flush(self): raise OSError("no space left")
        sys.stdout = Broken()
        leave(5)
        sys.stderr.write("returned")
        """
    )
    assert done.returncode == 120 and done.stderr.startswith("returned"), done.stderr


def test_the_console_script_ends_through_leave() -> None:
    # the checker's own exit code and output, not a tear-down's
    code = f"""
        import atexit, sys
        atexit.register(lambda: print("torn down"))
        sys.argv = ["checker", "rules", "--specs", {str(SPECS)!r}]
        from checker.console import main
        main()
        """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "new" in done.stdout and "torn down" not in done.stdout


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork hooks here")
def test_a_fork_waits_for_the_context_made_ahead() -> None:
    # forked at once, while the thread is still making the context (it takes
    # milliseconds): the fork waits, and the child uses the context it inherits
    done = _python(
        """
        import os, sys, time, z3
        from checker.engines import smt
        smt.make_main_context_ahead()
        pid = os.fork()
        if pid == 0:
            solver = z3.Solver(ctx=smt.main_context())
            solver.add(z3.Bool("x", ctx=smt.main_context()))
            os._exit(0 if solver.check() == z3.sat else 1)
        print("alive at fork:", smt._making.is_alive())
        # a child forked mid-way can hang (z3's allocator locked by a thread it
        # does not have): it is given 30 s, then killed
        for _ in range(3000):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child:", os.waitstatus_to_exitcode(status))
                break
            time.sleep(0.01)
        else:
            os.kill(pid, 9)
            print("child: hung")
        print("same:", smt.main_context() is z3.main_ctx())
        """
    )
    assert done.stdout.split("\n")[:3] == ["alive at fork: False", "child: 0", "same: True"], (
        done.stdout + done.stderr
    )


def test_a_check_makes_its_context_ahead(tmp_path: Path) -> None:
    code = f"""
        import os, sys, threading
        os.environ["CHECKER_CACHE_DIR"] = {str(tmp_path)!r}
        made_in = []
        import z3
        real = z3.Context.__init__
        def init(self, *args, **kwargs):
            made_in.append(threading.current_thread().name)
            real(self, *args, **kwargs)
        z3.Context.__init__ = init
        from checker.cli import main
        code = main(["check", "--rule", "new", "--mmu", "shadow", "--specs", {str(SPECS)!r}])
        print(code, made_in)
        """
    done = _python(code)
    # the main context from the thread; Spacer's own (no hint yet), in the main thread
    assert done.stdout.splitlines()[-1].startswith("0 ['z3 main context'"), done.stdout


def test_the_thread_never_outlives_the_command() -> None:
    # a bad --era fails on the input, before anything uses the context; the context
    # is made slowly here, so that the thread would still run if nothing waited
    code = f"""
        import sys, time, z3
        real = z3.main_ctx
        def slow():
            time.sleep(0.5)
            return real()
        z3.main_ctx = slow
        from checker.cli import main
        code = main(["check", "--rule", "new", "--era", "v0.1", "--specs", {str(SPECS)!r}])
        from checker.engines import smt
        print(code, smt._making is not None, smt._making.is_alive())
        """
    done = _python(code)
    assert done.stdout.splitlines()[-1] == "2 True False", done.stdout + done.stderr


def test_an_engine_without_z3_makes_no_context_ahead(tmp_path: Path) -> None:
    code = f"""
        import os, sys
        os.environ["CHECKER_CACHE_DIR"] = {str(tmp_path)!r}
        from checker.cli import main
        code = main(["check", "--rule", "new", "--engine", "explicit", "--mmu", "shadow",
                     "--specs", {str(SPECS)!r}])
        smt = sys.modules.get("checker.engines.smt")
        print(code, smt is None or smt._making is None)
        """
    done = _python(code)
    assert done.stdout.splitlines()[-1] == "0 True", done.stdout + done.stderr
