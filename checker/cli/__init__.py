"""The ``checker`` command: the only code that prints or chooses an exit code.

Each subcommand lives in its own module under ``checker.cli`` and is imported only
when it runs (or when ``--help`` lists it); z3 and networkx are imported inside the
commands that need them, so ``--help`` and shell completion stay fast. Commands
return their exit code; :class:`CheckerGroup` maps errors to codes and one-line
messages.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click

from checker import process
from checker.errors import CheckerError, InternalError, Interrupted

#: the exit codes every command shares, beyond its own 0..4
SIGNAL_EXIT_CODES = """\
  130  interrupted by Ctrl-C (one line; no file half-written)
  141  the reader of stdout or stderr went away (e.g. | head): a quiet exit
"""

EXIT_CODES = (
    """\b
Exit codes:
  0  every property holds
  1  a violation (safety or precision)
  2  usage or spec error; also stdout that cannot be written (a full disk, closed)
  3  inconclusive (z3 unknown or an exhausted budget)
  4  internal error (a one-line message; the traceback with --debug)
"""
    + SIGNAL_EXIT_CODES
)

#: subcommand name -> "module:attribute", loaded on first use
COMMANDS: dict[str, str] = {
    "check": "checker.cli.check:check",
    "diff": "checker.cli.diff:diff",
    "export": "checker.cli.export:export",
    "export-model": "checker.cli.export_model:export_model",
    "extract": "checker.cli.extract:extract",
    "gate": "checker.cli.gate:gate",
    "graph": "checker.cli.graph:graph",
    "history": "checker.cli.history:history",
    "list": "checker.cli.listing:list_counterexamples",
    "rules": "checker.cli.rules:rules",
    "scenario": "checker.cli.scenario:scenario",
    "show": "checker.cli.show:show",
    "synth": "checker.cli.synth:synth",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: the commands that call :func:`checker.process.collect_from_now` themselves, once
#: they have imported what they need and read their input
COLLECTS_LATER = frozenset({"check"})


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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name not in COLLECTS_LATER:
            # the command's module is imported: garbage is collected from here on
            process.collect_from_now()
        return name, command, rest

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # --help and --version print from eager callbacks while the arguments are
        # parsed, before invoke()
        with _output_failures():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _output_failures():
            return super().invoke(ctx)

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


@contextlib.contextmanager
def _output_failures() -> Iterator[None]:
    """click's main() turns a broken pipe into exit 1, "violation" here: take
    failures to write stdout or stderr past it."""
    try:
        yield
    except OSError as exc:
        stream = _echo_stream(exc)
        if stream is not None:
            raise OutputFailure(exc, stream) from exc
        raise


def _run(
    group: click.Group, argv: list[str], complete_var: str | None, extra: dict[str, Any]
) -> int:
    process.new_run()
    code = _dispatch(group, argv, complete_var, extra)
    # what is still buffered is written now, while a failure can be reported
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        return _output_failed(exc, "stdout")
    except ValueError:
        pass  # closed (reported already)
    return code


def _dispatch(
    group: click.Group, argv: list[str], complete_var: str | None, extra: dict[str, Any]
) -> int:
    from checker import interrupt

    debug = "--debug" in argv
    if not _stdout_open():
        # Python replaces a closed stdout by None and click then prints nothing:
        # the run would "succeed" with its answer lost
        _say(f"checker: error: {STDOUT_CLOSED}")
        return 2
    try:
        with interrupt.handling():
            code = click.Group.main(
                group, argv, "checker", complete_var, standalone_mode=False, **extra
            )
            # Ctrl-C while the last lines were printed still stops the run
            interrupt.check()
    except click.exceptions.Exit as exc:  # --help, shell completion
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError:
        _say(SHORT_USAGE)
        return 2
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _say(f"checker: error: {exc.format_message()}{hint}")
        return 2
    except (click.Abort, KeyboardInterrupt, Interrupted):
        # click.Abort: Ctrl-C at a prompt; KeyboardInterrupt: before the handler
        # was installed (in-process callers, who have no checker.console)
        process.say_interrupted()
        return Interrupted.exit_code
    except CheckerError as exc:
        if debug and exc.exit_code == InternalError.exit_code:
            _print_traceback()
        prefix = "inconclusive" if exc.exit_code == 3 else "error"
        _say(f"checker: {prefix}: {exc}")
        return exc.exit_code
    except OutputFailure as exc:
        return _output_failed(exc.error, exc.stream)
    except Exception as exc:
        return _internal(exc, debug)
    return code if isinstance(code, int) else 0


#: what bare ``checker`` prints (on stderr, exit 2: no command is a usage error)
SHORT_USAGE = (
    "usage: checker [--debug] COMMAND [ARGS]...\n"
    f"commands: {', '.join(sorted(COMMANDS))}\n"
    "checker: error: no command given; see 'checker --help' or 'checker COMMAND --help'"
)
STDOUT_CLOSED = "stdout is closed; redirect it (e.g. >/dev/null) instead of closing it"
#: the exit code of a run whose reader went away, as for a command killed by SIGPIPE
BROKEN_PIPE = 141


class OutputFailure(Exception):
    """Writing to stdout or stderr failed (carried past click, which would exit 1)."""

    def __init__(self, error: OSError, stream: str) -> None:
        super().__init__(str(error))
        self.error = error
        #: "stdout" or "stderr"
        self.stream = stream


def _internal(exc: Exception, debug: bool) -> int:
    if debug:
        _print_traceback()
    _say(
        f"checker: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
    )
    return InternalError.exit_code


def _stdout_open() -> bool:
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return True  # not a file (a test runner's capture): it is open
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _echo_stream(exc: OSError) -> str | None:
    """``"stdout"`` or ``"stderr"`` if ``exc`` was raised writing there through
    ``click.echo``; None if it came from elsewhere."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils":
            return "stderr" if frame.f_locals.get("err") else "stdout"
        tb = tb.tb_next
    return None


def _output_failed(exc: OSError, stream: str) -> int:
    """A reader that went away (``| head``, also ``2>&1 | head``) ends the run quietly
    with 141; any other failure to write stdout (a full disk) is a one-line error,
    exit 2, as for an output file that cannot be written."""
    # whatever is still buffered would fail again when Python flushes at exit
    failed = sys.stdout if stream == "stdout" else sys.stderr
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, failed.fileno())
        os.close(devnull)
    if exc.errno == errno.EPIPE:
        return BROKEN_PIPE
    why = exc.strerror or str(exc)
    _say(f"checker: error: cannot write to {stream}: {why}; free space or redirect {stream}")
    return 2


def _say(line: str) -> None:
    """``line`` on stderr, unless stderr itself cannot be written (then the exit code
    is all there is)."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


def versions() -> list[str]:
    """The checker's, z3's and Python's versions, one per line (what a bug report
    needs). z3 is imported here only: other commands that do not solve never load it."""
    import platform

    from checker import version
    from checker.engines.smt import z3_version

    return [f"checker {version()}", f"z3 {z3_version()}", f"Python {platform.python_version()}"]


def _print_versions(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    for line in versions():
        click.echo(line)
    ctx.exit(0)


@click.group(cls=CheckerGroup, epilog=EXIT_CODES, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show the traceback of internal errors.")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Print the checker, z3 and Python versions and exit.",
)
def cli(debug: bool) -> None:
    """Model checker for KVM x86's TLB-flush rule on leaf SPTE updates.

    It checks, for every reachable interleaving of vCPUs and KVM paths, that a
    flush is requested iff MMU-writable is cleared while a stale writable TLB
    entry may exist.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """The ``checker`` console script: run the CLI, return its exit code."""
    return cli.main(args=argv, standalone_mode=False)


def _print_traceback() -> None:
    """The exception being handled's traceback, on stderr (``--debug``)."""
    import traceback  # only then: it takes a while to import

    traceback.print_exc()
