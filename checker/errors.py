"""Errors that reach the user, each with the exit code the CLI gives it.

Engines and loaders raise these; only ``checker.cli`` turns them into a one-line
message and an exit code.
"""

from __future__ import annotations

from typing import Any


class CheckerError(Exception):
    """Root of the errors the CLI reports in one line."""

    exit_code = 4


class InputError(CheckerError):
    """Bad input from the user: a rule, a spec file, an option, a path. Exit 2."""

    exit_code = 2


class InternalError(CheckerError):
    """The checker contradicted itself, e.g. a counterexample failed to replay. Exit 4."""

    exit_code = 4


class Inconclusive(CheckerError):
    """A run that cannot give an answer within its budget (e.g. --max-states). Exit 3."""

    exit_code = 3


class Interrupted(CheckerError):
    """Ctrl-C stopped the run (see ``checker.interrupt``). Exit 130, as for a shell
    command killed by SIGINT."""

    exit_code = 130


def quoted(value: Any, limit: int = 60) -> str:
    """``repr(value)`` (an exception's own text), cut short at ``limit`` characters:
    a message quotes what a file holds, never all of it."""
    text = str(value) if isinstance(value, BaseException) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
