"""The ``checker`` command as a process (also ``python -m checker``): Ctrl-C from
its first instant to its last.

This module is imported before anything else of the checker, and imports nothing
heavy itself (:mod:`checker.process` is signal handling only), so that a Ctrl-C
while Python imports the CLI (click, z3: the first tenth of a second) already gives
exit 130 and the one line ``checker: interrupted`` rather than a traceback. It is
the top of the import graph: it runs the CLI, and nothing imports it but
``python -m checker``.
"""

from __future__ import annotations

# _signal, the C module under ``signal``: importing ``signal`` itself (enum,
# functools) would take a few milliseconds more before Ctrl-C is taken
import _signal  # type: ignore[import-not-found]

from checker.process import defer_collection, leave, on_sigint, stop


def main() -> int:
    """The console script: take SIGINT, then import and run the CLI (without
    garbage collection until the command starts its work, see
    :func:`checker.process.defer_collection`), and end without Python's tear-down
    (:func:`checker.process.leave`)."""
    _signal.signal(_signal.SIGINT, on_sigint)
    defer_collection()
    from checker.cli import main as run

    code = run()
    # the process decides here: a Ctrl-C already received stops it with 130, and
    # one that comes later stays blocked while Python shuts down (where its default
    # would kill the process by the signal, with no line)
    if hasattr(_signal, "pthread_sigmask"):
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
        if _signal.SIGINT in _signal.sigpending():
            stop()
    leave(code)
    return code
