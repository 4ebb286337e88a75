"""Progress on stderr, for the commands that may run for more than a second.

A line as each unit of work (a property, an exploration) starts and one as it
ends. Shown when stderr is a terminal, or when asked with ``--progress``; never
with ``--quiet``. So a script's or CI log's stderr stays quiet unless it asks, and
``--json`` on stdout is never mixed with anything. Where stdout already shows each
verdict as it comes (``check`` printing text to a terminal), the terminal is not
told twice: progress is then shown only when asked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from checker.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def progress_options(f: F) -> F:
    """``--progress`` and ``--quiet``: whether progress lines go to stderr."""
    f = click.option(
        "--quiet",
        "-q",
        is_flag=True,
        help="No progress lines on stderr (the verdicts and the summary still print).",
    )(f)
    return click.option(
        "--progress",
        "show_progress",
        is_flag=True,
        help="Progress lines on stderr even when it is not a terminal "
        "(by default only on a terminal).",
    )(f)


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (read at call time: tests replace the stream)."""
    return _is_terminal(sys.stderr)


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal."""
    return _is_terminal(sys.stdout)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


@dataclass
class Progress:
    """Writes ``PREFIX: what ...`` as work starts and ``PREFIX: what outcome`` as it
    ends, to stderr, when ``enabled``."""

    enabled: bool
    #: names the command, e.g. ``gate: `` (empty for ``check``)
    prefix: str = ""
    _clock: Callable[[], float] = field(default=time.perf_counter, repr=False)

    def say(self, text: str) -> None:
        if self.enabled:
            click.echo(f"{self.prefix}{text}", err=True)

    def started(self, what: str) -> None:
        self.say(f"{what} ...")

    def finished(self, what: str, outcome: str) -> None:
        self.say(f"{what} {outcome}")

    @contextmanager
    def step(self, what: str) -> Iterator[list[str]]:
        """Around one unit of work: the caller appends the outcome's words to the
        yielded list; the end line adds the seconds it took."""
        self.started(what)
        started = self._clock()
        outcome: list[str] = []
        yield outcome
        seconds = self._clock() - started
        self.finished(what, " ".join([*outcome, f"{seconds:.2f}s"]))


def progress_for(
    show_progress: bool, quiet: bool, prefix: str = "", live_stdout: bool = False
) -> Progress:
    """The progress the options ask for (see the module docstring); ``live_stdout``:
    stdout shows each unit's outcome as it ends, so a terminal there needs no more."""
    if show_progress and quiet:
        raise InputError("--progress and --quiet contradict each other; give one of them")
    told = live_stdout and stdout_is_terminal()
    enabled = show_progress or (not quiet and not told and stderr_is_terminal())
    return Progress(enabled, prefix)
