"""Independent computations over a few forked processes, answers in order.

``checker synth`` classifies several eras and MMUs, each a self-contained
computation of a few seconds; ``checker check`` and ``checker scenario`` decide
the properties of several MMUs (a few tenths of a second each when hints spare
the searches). :func:`run` computes each in a child process of its
own (``fork``: the child starts with the parent's imports and caches), at most
``jobs`` at a time, and yields the answers in the order of the tasks. Answers come
back pickled through a pipe; each task's answer is what the same call in the
parent would give (the computations are deterministic).

Ctrl-C and failures:

* a child takes SIGINT as the default action (it dies at once, silently) and
  never prints: the parent, which checks :func:`checker.interrupt.check` while it
  waits, raises :class:`~checker.errors.Interrupted`, and every child still
  running is killed, so nothing outlives the run;
* a :class:`~checker.errors.CheckerError` in a child is raised again in the
  parent, of the same kind and with the same message (an inconclusive
  exploration stays exit 3); any other exception, or a child that dies without
  an answer, is an :class:`~checker.errors.InternalError` (the child's traceback
  is the cause, shown by ``checker --debug``).

With ``jobs`` 1, a single task, or no ``fork`` on the platform, the tasks run in
the calling process, one after the other.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from checker import errors, interrupt
from checker.process import EXIT_INTERRUPTED

T = TypeVar("T")
#: the children running, by task: the process and the end of its pipe
Running = dict[int, tuple[Any, Connection]]

#: the kinds of errors a child reports by name (a CheckerError's subclass may take
#: other arguments than its message, so the error itself is not pickled)
_KINDS: dict[str, type[errors.CheckerError]] = {
    k.__name__: k
    for k in (
        errors.InputError,
        errors.InternalError,
        errors.Inconclusive,
        errors.Interrupted,
        errors.CheckerError,
    )
}


def default_jobs() -> int:
    """Processes worth running at once: as many as cores this process may use, at
    most two (the computations are a few seconds each; more processes than that
    mostly cost memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


class RemoteTraceback(Exception):
    """A child's traceback, as the cause of the error raised in the parent."""


def run(
    function: Callable[..., T],
    tasks: Sequence[tuple[Any, ...]],
    jobs: int,
    started: Callable[[int], None] | None = None,
) -> Generator[T, None, None]:
    """``function(*task)`` for each task, yielded in order; ``started(i)`` is
    called as task ``i`` starts."""
    if jobs <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for i, task in enumerate(tasks):
            if started is not None:
                started(i)
            yield function(*task)
        return
    context = multiprocessing.get_context("fork")
    # a child's lifeline: the parent holds the write end for the whole run, so a
    # child reads end-of-file when the parent is gone (stopped at once by a
    # second Ctrl-C, say) and leaves too
    lifeline = os.pipe()
    running: Running = {}
    #: the children that have answered, left to exit while this process goes on
    #: (freeing a big process's memory takes a few milliseconds); reaped at the end
    answered: list[Any] = []
    answers: dict[int, tuple[str, Any]] = {}
    following = 0
    try:
        for i in range(len(tasks)):
            # wait for room, then start task i
            while len(running) >= jobs:
                _collect(running, answers, answered)
                while following in answers:
                    yield _answer(answers.pop(following))
                    following += 1
            if started is not None:
                started(i)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # a child must not write the parent's buffered output
            receiving, sending = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, args=(function, tasks[i], sending, lifeline), daemon=True
            )
            child.start()
            sending.close()
            running[i] = (child, receiving)
        while following < len(tasks):
            while following not in answers:
                _collect(running, answers, answered)
            yield _answer(answers.pop(following))
            following += 1
    finally:
        for child, receiving in running.values():
            child.kill()
            child.join()
            receiving.close()
        for child in answered:
            child.join()
        for end in lifeline:
            os.close(end)


def _collect(
    running: dict[int, tuple[Any, Connection]],
    answers: dict[int, tuple[str, Any]],
    answered: list[Any],
) -> None:
    """Wait a little for answers, checking for Ctrl-C; the children that answered
    go from ``running`` to ``answered``."""
    interrupt.check()
    ready = wait([r for _, r in running.values()], timeout=0.05)
    for i, (child, receiving) in list(running.items()):
        if receiving not in ready:
            continue
        try:
            answers[i] = receiving.recv()
        except EOFError:
            # the child died: of the same Ctrl-C as the parent (whose handler may
            # not have run yet), or of something else
            time.sleep(0.1)
            interrupt.check()
            answers[i] = ("crash", f"the process of task {i} ended without an answer")
        answered.append(child)
        receiving.close()
        del running[i]


def _orphaned(read_end: int) -> None:
    """Wait for the parent to be gone (end-of-file on the lifeline), then leave."""
    with contextlib.suppress(OSError):
        while os.read(read_end, 1):
            pass
    os._exit(EXIT_INTERRUPTED)


def _answer(answer: tuple[str, Any]) -> Any:
    kind, value = answer
    if kind == "ok":
        return value
    if kind == "error":
        name, message = value
        raise _KINDS[name](message)
    raise errors.InternalError(value.strip().splitlines()[-1]) from RemoteTraceback(value)


def _child(
    function: Callable[..., Any],
    task: tuple[Any, ...],
    sending: Connection,
    lifeline: tuple[int, int],
) -> None:
    """In the child: compute, send the answer, and leave without running the
    parent's exit handlers; leave at once if the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.close(lifeline[1])
    threading.Thread(target=_orphaned, args=(lifeline[0],), daemon=True).start()
    with contextlib.suppress(ValueError):  # not the main thread
        signal.set_wakeup_fd(-1)
    try:
        answer: tuple[str, Any] = ("ok", function(*task))
    except errors.CheckerError as e:
        kind = next(k for k in type(e).__mro__ if k.__name__ in _KINDS).__name__
        answer = ("error", (kind, str(e)))
    except BaseException:
        answer = ("crash", _traceback())
    try:
        sending.send(answer)
    except Exception:
        sending.send(("crash", _traceback()))
    sending.close()


def _traceback() -> str:
    """The exception being handled's traceback (imported only then: it takes a while)."""
    import traceback

    return traceback.format_exc()
