"""Ctrl-C: stop a run at once, with nothing half-written.

By default z3 takes SIGINT for itself while it solves: it cancels the current query,
which then answers ``unknown`` ("canceled") and the run goes on with a wrong
verdict (INCONCLUSIVE, or a trace with more vCPUs than needed); the signal never
reaches Python. :func:`handling` (the CLI's, for the duration of a run) turns z3's
handler off and takes SIGINT itself:

* the Python-level handler only sets a flag, so no exception is raised in the
  middle of a write or inside a destructor (where Python would print and swallow
  it); a second Ctrl-C stops the process at once (:func:`checker.process.stop`:
  exit 130, the one line, no exception that z3's destructors could report), for
  code that reaches no check point soon (in the middle of writing files, which
  takes milliseconds, it waits for the next check point);
* a watcher thread, woken through :func:`signal.set_wakeup_fd` even while the main
  thread is inside z3, sets the flag and interrupts the z3 contexts that are
  solving (:func:`solving`), so a long query stops promptly too;
* the flag is checked after every solver call (:func:`solving`), at every state of
  the explicit engine, and before any file is written (:func:`check`), raising
  :class:`~checker.errors.Interrupted`, which the CLI maps to exit 130.

An answer of z3 while the flag is set is never a verdict: ``unknown`` because of an
interruption is not INCONCLUSIVE. Without :func:`handling` (library use) nothing
changes: z3 keeps its own handler and the flag stays down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from checker.errors import Interrupted
from checker.process import stop

_requested = threading.Event()
_lock = threading.Lock()
#: z3 contexts inside a solver call, to interrupt from the watcher thread
_solving: list[Any] = []
_handling = False
_z3_quiet = False


def requested() -> bool:
    """Ctrl-C was pressed during this run."""
    return _requested.is_set()


def check() -> None:
    """Raise :class:`Interrupted` if Ctrl-C was pressed: a point where stopping
    leaves nothing half-done."""
    if _requested.is_set():
        raise Interrupted("interrupted")


@contextlib.contextmanager
def solving(context: Any) -> Iterator[None]:
    """Around one z3 call on ``context``: Ctrl-C interrupts it, and the call's answer
    is discarded (:class:`Interrupted`) if Ctrl-C was pressed before it returned."""
    check()
    if _handling:
        _quiet_z3()
    with _lock:
        _solving.append(context)
    try:
        yield
    finally:
        with _lock:
            _solving.remove(context)
    check()


def _quiet_z3() -> None:
    """z3 must not take SIGINT from us (its handler cancels and swallows it)."""
    global _z3_quiet
    if not _z3_quiet:
        import z3

        z3.set_param("ctrl_c", False)
        _z3_quiet = True


def _interrupt() -> None:
    _requested.set()
    with _lock:
        for context in _solving:
            context.interrupt()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Take SIGINT for the duration of a run (main thread only; elsewhere, Python's
    default applies). The previous handler is restored afterwards: for the
    ``checker`` command, :func:`checker.process.on_sigint`, so a Ctrl-C after the
    run still gives exit 130 and the one line."""
    global _handling, _z3_quiet
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    presses = 0

    def pressed(signum: int, frame: FrameType | None) -> None:
        # the first Ctrl-C asks to stop at the next safe point; a second one stops
        # wherever the run is, without raising: a KeyboardInterrupt inside z3 (a
        # Context being built or freed) would surface as "Exception ignored"
        # tracebacks, or kill the process. In the middle of writing files (a few
        # milliseconds) it waits: stopping between two renames would leave one
        # file of a set without the others; the next check point stops the run,
        # and a further Ctrl-C outside the write stops it at once
        nonlocal presses
        presses += 1
        _requested.set()
        if presses > 1 and not _writing_files(frame):
            stop()

    previous = signal.signal(signal.SIGINT, pressed)
    previous_wakeup = signal.set_wakeup_fd(write_end)
    watcher = threading.Thread(target=_watch, args=(read_end,), daemon=True)
    watcher.start()
    _handling = True
    try:
        yield
    finally:
        _handling = False
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        os.close(write_end)  # the watcher reads end-of-file and returns
        watcher.join()
        os.close(read_end)
        if _z3_quiet:
            import z3

            z3.set_param("ctrl_c", True)
            _z3_quiet = False


def _writing_files(frame: FrameType | None) -> bool:
    """The main thread is inside :mod:`checker.files` writing (not in a destructor
    that a garbage collection ran there)."""
    if frame is None or frame.f_code.co_name == "__del__":
        return False
    while frame is not None:
        if frame.f_globals.get("__name__") == "checker.files":
            return True
        frame = frame.f_back
    return False


def _watch(read_end: int) -> None:
    while True:
        try:
            received = os.read(read_end, 64)
        except OSError:
            return
        if not received:
            return
        if signal.SIGINT in received:
            _interrupt()
