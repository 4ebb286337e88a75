"""The ``checker`` command as a process (also ``python -m checker``): Ctrl-C from
its first instant to its last.

This module is imported before anything else of the checker, and imports nothing
heavy itself, so that a Ctrl-C while Python imports the CLI (click, z3: the first
tenth of a second) already gives exit 130 and the one line ``checker: interrupted``
rather than a traceback. A run takes SIGINT for itself (:func:`checker.interrupt.handling`)
and gives it back to :func:`on_sigint` afterwards; at the very end (:func:`main`),
a Ctrl-C still pending stops the process with 130 too, and one that comes later
finds the process already exiting with its own code.
"""

from __future__ import annotations

# _signal, the C module under ``signal``: importing ``signal`` itself (enum,
# functools) would take a few milliseconds more before Ctrl-C is taken
import _signal  # type: ignore[import-not-found]
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType
    from typing import NoReturn

#: the one line a Ctrl-C prints, on stderr
INTERRUPTED = "checker: interrupted"
#: the exit code of an interrupted run, as for a command killed by SIGINT
EXIT_INTERRUPTED = 130

_said = False


def new_run() -> None:
    """A run starts (in-process callers run several): its interruption is reported
    anew."""
    global _said
    _said = False


def say_interrupted() -> None:
    """:data:`INTERRUPTED` on stderr, once per process (a second Ctrl-C, or one
    after the run reported its interruption, adds nothing)."""
    global _said
    if _said:
        return
    _said = True
    try:
        sys.stderr.write(INTERRUPTED + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed or gone: the exit code is all there is
    except RuntimeError:
        # inside a signal handler that interrupted a write to stderr ("reentrant
        # call"): past the buffer
        try:  # noqa: SIM105 - contextlib is not imported this early
            os.write(2, (INTERRUPTED + "\n").encode())
        except OSError:
            pass


def stop() -> NoReturn:
    """Exit 130 at once, with the one line. Files are written atomically (a
    temporary file renamed into place), so stopping anywhere leaves none
    half-written; what was printed is flushed first. No exception is raised, so
    none can surface from a destructor (z3's) as an "Exception ignored" traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # closed, full, or inside a write: nothing more to do
            pass
    say_interrupted()
    os._exit(EXIT_INTERRUPTED)


def on_sigint(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGINT outside a run: the process stops at once (:func:`stop`)."""
    stop()


def main() -> int:
    """The console script: take SIGINT, then import and run the CLI."""
    _signal.signal(_signal.SIGINT, on_sigint)
    from checker.cli import main as run

    code = run()
    # the process decides here: a Ctrl-C already received stops it with 130, and
    # one that comes later stays blocked while Python shuts down (where its default
    # would kill the process by the signal, with no line)
    if hasattr(_signal, "pthread_sigmask"):
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
        if _signal.SIGINT in _signal.sigpending():
            stop()
    return code
