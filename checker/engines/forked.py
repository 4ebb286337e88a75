"""Independent computations over a few forked processes, answers in order.

``checker synth`` classifies several eras and MMUs, each a self-contained
computation of a few seconds; ``checker check`` and ``checker scenario`` decide
the properties of several MMUs (a few tenths of a second each when hints spare the
searches). :func:`run` computes each in a child process of its own (``fork``: the
child starts with the parent's imports and caches; but see below for the last), at
most ``jobs`` at a time, and yields the answers in the order of the tasks. Answers
come back pickled through a pipe; each task's answer is what the same call in the
parent would give (the computations are deterministic). The processes are made
with ``os.fork`` and plain pipes: ``multiprocessing`` would do the same, but
importing it costs a short check more than a tenth of its own work.

Where there are no more tasks than ``jobs``, the last task is computed in the
calling process while the others run in children: that process would only wait,
and its task then needs neither a fork nor a pickled answer (``checker check``
of one rule's two MMUs: about 8 ms, a twentieth of the run, measured over 30
alternating runs). Its exception, if any, is raised in its turn, after the
answers of the tasks before it, as a child's would be.

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
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from checker import errors, interrupt
from checker.process import EXIT_INTERRUPTED

T = TypeVar("T")
#: the children running, by task: the process id and the read end of its pipe
Running = dict[int, tuple[int, int]]

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
    if jobs <= 1 or len(tasks) <= 1 or not hasattr(os, "fork"):
        for i, task in enumerate(tasks):
            if started is not None:
                started(i)
            yield function(*task)
        return
    # a child's lifeline: the parent holds the write end for the whole run, so a
    # child reads end-of-file when the parent is gone (stopped at once by a
    # second Ctrl-C, say) and leaves too
    lifeline = os.pipe()
    running: Running = {}
    #: the children that have answered, left to exit while this process goes on
    #: (freeing a big process's memory takes a few milliseconds); reaped at the end
    answered: list[int] = []
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
            if i == len(tasks) - 1 and len(tasks) <= jobs:
                answers[i] = _here(function, tasks[i])  # the others run meanwhile
                continue
            for stream in (sys.stdout, sys.stderr):
                stream.flush()  # a child must not write the parent's buffered output
            running[i] = _start(function, tasks[i], lifeline)
        while following < len(tasks):
            while following not in answers:
                _collect(running, answers, answered)
            yield _answer(answers.pop(following))
            following += 1
    finally:
        for pid, receiving in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
            os.close(receiving)
        for pid in answered:
            _reap(pid)
        for end in lifeline:
            os.close(end)


def _start(
    function: Callable[..., Any], task: tuple[Any, ...], lifeline: tuple[int, int]
) -> tuple[int, int]:
    """A child computing ``function(*task)``: its process id and the read end of
    the pipe its answer comes through."""
    receiving, sending = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(receiving)
            _child(function, task, sending, lifeline)
        finally:
            os._exit(0)
    os.close(sending)
    return pid, receiving


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _collect(running: Running, answers: dict[int, tuple[str, Any]], answered: list[int]) -> None:
    """Wait a little for answers, checking for Ctrl-C; the children that answered
    go from ``running`` to ``answered``."""
    interrupt.check()
    ready, _, _ = select.select([r for _, r in running.values()], [], [], 0.05)
    for i, (pid, receiving) in list(running.items()):
        if receiving not in ready:
            continue
        data = _read_all(receiving)
        try:
            answers[i] = pickle.loads(data)
        except Exception:
            # the child died: of the same Ctrl-C as the parent (whose handler may
            # not have run yet), or of something else
            time.sleep(0.1)
            interrupt.check()
            answers[i] = ("crash", f"the process of task {i} ended without an answer")
        answered.append(pid)
        os.close(receiving)
        del running[i]


def _read_all(fd: int) -> bytes:
    """Everything written to the pipe ``fd`` until its writer closes it (a child
    writes its whole answer, then leaves)."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _orphaned(read_end: int) -> None:
    """Wait for the parent to be gone (end-of-file on the lifeline), then leave."""
    with contextlib.suppress(OSError):
        while os.read(read_end, 1):
            pass
    os._exit(EXIT_INTERRUPTED)


def _here(function: Callable[..., Any], task: tuple[Any, ...]) -> tuple[str, Any]:
    """``function(*task)`` computed in this process, as an answer: its exception is
    kept to be raised in its turn (a Ctrl-C, not an ``Exception``, stops the run at
    once)."""
    try:
        return ("ok", function(*task))
    except Exception as exc:
        return ("raised", exc)


def _answer(answer: tuple[str, Any]) -> Any:
    kind, value = answer
    if kind == "ok":
        return value
    if kind == "raised":
        raise value
    if kind == "error":
        name, message = value
        raise _KINDS[name](message)
    raise errors.InternalError(value.strip().splitlines()[-1]) from RemoteTraceback(value)


def _child(
    function: Callable[..., Any],
    task: tuple[Any, ...],
    sending: int,
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
        data = pickle.dumps(answer)
    except Exception:
        data = pickle.dumps(("crash", _traceback()))
    with os.fdopen(sending, "wb") as pipe:
        pipe.write(data)


def _traceback() -> str:
    """The exception being handled's traceback (imported only then: it takes a while)."""
    import traceback

    return traceback.format_exc()
