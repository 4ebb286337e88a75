"""Errors that reach the user, each with the exit code the CLI gives it.

Engines and loaders raise these; only ``checker.cli`` turns them into a one-line
message and an exit code.
"""

from __future__ import annotations


class CheckerError(Exception):
    """Root of the errors the CLI reports in one line."""

    exit_code = 4


class InputError(CheckerError):
    """Bad input from the user: a rule, a spec file, an option, a path. Exit 2."""

    exit_code = 2


class InternalError(CheckerError):
    """The checker contradicted itself, e.g. a counterexample failed to replay. Exit 4."""

    exit_code = 4
