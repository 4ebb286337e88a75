"""How the ``checker`` process ends on Ctrl-C: the one line, exit 130, at once.

Shared by the console script (:mod:`checker.console`), which takes SIGINT before
anything else is imported, and by :mod:`checker.interrupt`, which takes it for a
run. It imports nothing heavy. A run takes SIGINT for itself
(:func:`checker.interrupt.handling`) and gives it back to :func:`on_sigint`
afterwards; at the very end (:func:`checker.console.main`), a Ctrl-C still pending
stops the process with 130 too.
"""

from __future__ import annotations

import gc
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
    _flush_output()
    say_interrupted()
    os._exit(EXIT_INTERRUPTED)


def leave(code: int) -> None:
    """End the process with ``code`` now, once what was printed is flushed, without
    Python's tear-down: freeing every module and object, and libz3's own static
    destructors, take about 10 ms after the work is done (measured: a bare
    ``import z3`` spends 11-12 ms ending normally, under 2 ms this way), a twentieth
    of a short check. Nothing is lost: the checker writes files atomically and
    closes them (:mod:`checker.files`), registers no exit handlers, and its forked
    processes end the same way. Returns (and Python ends as usual, reporting what
    it must) only if the output cannot be flushed."""
    if _flush_output():
        os._exit(code)


def _flush_output() -> bool:
    """Flush stdout and stderr, each as far as it goes; whether both were."""
    flushed = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # closed, full, or inside a write: nothing more to do
            flushed = False
    return flushed


def on_sigint(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGINT outside a run: the process stops at once (:func:`stop`)."""
    stop()


_collection_deferred = False


def defer_collection() -> None:
    """The process starts: no garbage collection while the CLI and the engines are
    imported and the input is read. That makes long-lived objects (modules,
    classes, functions), which every collection would only traverse again (about
    a tenth of a start-up's work). :func:`collect_from_now` ends it."""
    global _collection_deferred
    if gc.isenabled():
        gc.disable()
        _collection_deferred = True


def collect_from_now() -> None:
    """The work starts: what the process holds now is kept out of all later
    collections (``gc.freeze``: neither this process nor the ones it forks
    traverse it again, or copy its pages doing so) and garbage is collected as
    usual. Nothing happens unless :func:`defer_collection` turned collection off."""
    global _collection_deferred
    if _collection_deferred:
        _collection_deferred = False
        gc.freeze()
        gc.enable()
