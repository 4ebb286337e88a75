"""The ``checker`` command: the only code that prints or chooses an exit code.

Each subcommand lives in its own module under ``checker.cli`` and is imported only
when it runs (or when ``--help`` lists it); z3 and networkx are imported inside the
commands that need them, so ``--help`` and shell completion stay fast. Commands
return their exit code; :class:`CheckerGroup` maps errors to codes and one-line
messages.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from checker.errors import CheckerError

EXIT_CODES = """\b
Exit codes:
  0  every property holds
  1  a violation (safety or precision)
  2  usage or spec error
  3  inconclusive (z3 unknown or an exhausted budget)
  4  internal error (a one-line message; the traceback with --debug)
"""

#: subcommand name -> "module:attribute", loaded on first use
COMMANDS: dict[str, str] = {
    "check": "checker.cli.check:check",
    "diff": "checker.cli.diff:diff",
    "export": "checker.cli.export:export",
    "extract": "checker.cli.extract:extract",
    "gate": "checker.cli.gate:gate",
    "graph": "checker.cli.graph:graph",
    "list": "checker.cli.listing:list_counterexamples",
    "rules": "checker.cli.rules:rules",
    "show": "checker.cli.show:show",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CheckerGroup(click.Group):
    """A click group that loads its subcommands lazily and owns the exit codes.

    click's own defaults collide with ours (a ``ClickException`` or any uncaught
    exception exits 1, which means "violation" here), so errors are mapped here:
    usage errors 2, ``CheckerError`` its ``exit_code``, anything else 4, each as one
    line on stderr. Commands return their exit code.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        argv = list(sys.argv[1:] if args is None else args)
        # always "checker": messages name the command the user types
        code = _run(self, argv, complete_var, extra)
        if standalone_mode:
            sys.exit(code)
        return code


def _run(
    group: click.Group, argv: list[str], complete_var: str | None, extra: dict[str, Any]
) -> int:
    debug = "--debug" in argv
    try:
        code = click.Group.main(
            group, argv, "checker", complete_var, standalone_mode=False, **extra
        )
    except click.exceptions.Exit as exc:  # --help, shell completion
        return exc.exit_code
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"checker: error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.Abort:
        click.echo("checker: aborted", err=True)
        return 130
    except CheckerError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"checker: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"checker: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
            err=True,
        )
        return 4
    return code if isinstance(code, int) else 0


@click.group(cls=CheckerGroup, epilog=EXIT_CODES, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show the traceback of internal errors.")
def cli(debug: bool) -> None:
    """Model checker for KVM x86's TLB-flush rule on leaf SPTE updates.

    It checks, for every reachable interleaving of vCPUs and KVM paths, that a
    flush is requested iff MMU-writable is cleared while a stale writable TLB
    entry may exist.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """The ``checker`` console script: run the CLI, return its exit code."""
    return cli.main(args=argv, standalone_mode=False)
