"""The forked computations run on ``os.fork`` and plain pipes (no multiprocessing,
whose import costs a short check more than a tenth of its work): answers of any
size come back in order, and a child that dies without one is an internal error."""

from __future__ import annotations

import os

import pytest

from checker import errors
from checker.engines import forked


def _big(n: int) -> bytes:
    return bytes([n]) * (1 << 20)  # far more than a pipe holds at once


def _dies(n: int) -> int:
    if n == 0:
        os._exit(0)
    return n


def _refused(n: int) -> int:
    raise errors.InputError(f"task {n} refused")


def test_answers_larger_than_a_pipe_come_back_whole_and_in_order() -> None:
    answers = list(forked.run(_big, [(1,), (2,), (3,)], 2))
    assert answers == [_big(1), _big(2), _big(3)]


def test_a_child_that_dies_without_an_answer_is_an_internal_error() -> None:
    with pytest.raises(errors.InternalError, match="task 0 ended without an answer"):
        list(forked.run(_dies, [(0,), (1,)], 2))


def test_an_input_error_keeps_its_kind_and_message() -> None:
    with pytest.raises(errors.InputError, match="task 0 refused"):
        list(forked.run(_refused, [(0,), (1,)], 2))


def test_no_child_is_left_behind() -> None:
    list(forked.run(_big, [(1,), (2,), (3,)], 2))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def _pid(n: int) -> int:
    return os.getpid()


def test_the_last_task_runs_here_when_no_task_waits_for_a_process() -> None:
    here = os.getpid()
    first, last = forked.run(_pid, [(0,), (1,)], 2)
    assert first != here and last == here
    # more tasks than processes: each in a child of its own, none here
    assert here not in list(forked.run(_pid, [(0,), (1,), (2,)], 2))


def _refused_last(n: int) -> int:
    if n == 1:
        raise errors.InputError(f"task {n} refused")
    return n


def test_the_error_of_the_task_here_comes_in_its_turn() -> None:
    answers = forked.run(_refused_last, [(0,), (1,)], 2)
    assert next(answers) == 0  # the child's answer first, as the order says
    with pytest.raises(errors.InputError, match="task 1 refused"):
        next(answers)
    # and an earlier task's error is the one raised, whatever the task here says
    with pytest.raises(errors.InputError, match="task 0 refused"):
        list(forked.run(_refused, [(0,), (1,)], 2))
