"""``checker export-model``: the model of a rule, for another model checker."""

from __future__ import annotations

from pathlib import Path

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathType,
    ensure_file_writable,
    one_mmu_options,
    one_rule_options,
    resolve_paths,
    rule_arguments,
    select_rules,
    shell_join,
    specs_option,
    vcpus_option,
    write_file,
)

#: format -> what it is
FORMATS: dict[str, str] = {
    "promela": "Promela for SPIN: a bool per state variable, a d_step per action, "
    "assertions for every property",
}

EXPORT_MODEL_EXIT_CODES = (
    """\b
Exit codes:
  0  the model was written
  2  usage or spec error; also an output that cannot be written (a full disk, closed)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=EXPORT_MODEL_EXIT_CODES)
@one_rule_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="promela",
    show_default=True,
    help="; ".join(f"{name}: {what}" for name, what in FORMATS.items()) + ".",
)
@vcpus_option
@click.option(
    "-o",
    "--output",
    type=PathType(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write here (atomically) instead of stdout.",
)
@one_mmu_options
@specs_option
def export_model(
    rule_name: str | None,
    expr: str | None,
    kernel: Path | None,
    fmt: str,
    vcpus: int,
    output: Path | None,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    specs: Path,
) -> int:
    """Write the model with a rule as Promela, for SPIN.

    The text is derived from the model's declaration, as the step function and the
    z3 encoding are: the same operations, frame and lock protocol, evaluated as
    Promela expressions. Its header names the rule, the paths, the vCPUs, the
    model's hash and the command that writes it again; the same command gives the
    same bytes. SPIN stores exactly the model's reachable states (as many as
    'checker graph' writes), and each violated property fails its assertion once.
    """
    from checker.engines import promela
    from checker.engines.check import DEFAULT_DEPTH
    from checker.model import System
    from checker.report.lock import model_sha256

    [rule] = select_rules(rule_name, expr, False, specs, kernel)
    (choice,) = resolve_paths(specs, era, mmu, harvest_flush, enable_flush, rule)
    to_stdout = output is None or str(output) == "-"
    if not to_stdout:
        assert output is not None
        ensure_file_writable(output, "-o")
    command = ["checker", "export-model", *rule_arguments(rule), "--vcpus", str(vcpus)]
    header = promela.Header(
        rule=rule.name,
        expression=rule.expression,
        era=choice.label,
        model_sha256=model_sha256(choice.paths, vcpus, DEFAULT_DEPTH),
        command=shell_join([*command, *choice.arguments]),
    )
    assert fmt == "promela"
    text = promela.export(System(rule, choice.paths), vcpus, header).text
    if to_stdout:
        click.echo(text, nl=False)
    else:
        assert output is not None
        write_file(output, text, "-o")
    return 0
