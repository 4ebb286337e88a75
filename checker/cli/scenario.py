"""``checker scenario``: a scenario's verdicts in every era, its fixes, its write-up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathsChoice,
    cache_option,
    default_trace_directory,
    ensure_writable,
    hint_store,
    out_option,
    specs_option,
    vcpus_option,
    write_trace,
)
from checker.errors import InputError

if TYPE_CHECKING:
    from checker.engines.scenario import Cell, ScenarioResult
    from checker.rules.specs import Rule

SCENARIO_EXIT_CODES = (
    """\b
Exit codes:
  0  every cell is as the scenario expects
  1  some cell is not as expected, or not stated in its [expect] (wins over 3)
  2  usage or spec error
  3  inconclusive: some property was not decided
  4  internal error (a one-line message; the traceback with --debug)
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=SCENARIO_EXIT_CODES)
@click.argument("name", required=False)
@vcpus_option
@out_option("Where the write-up and its traces go (under a folder named after the scenario).")
@cache_option
@specs_option
def scenario(name: str | None, vcpus: int, out: Path | None, no_cache: bool, specs: Path) -> int:
    """Check a scenario of specs/scenarios in every era it applies to, as shipped and
    with each of its fixes, and compare with what it expects.

    Each cell is 'checker check' of the era's own rule on the scenario's model
    (SMT engine: proofs for every number of vCPUs, shortest traces replayed), two
    at a time in forked processes where there are two cores. With
    --out (or inside the checker's checkout) it writes OUT/NAME/README.md, the
    write-up, and the traces it cites. Without NAME, lists the scenarios.
    """
    from checker import interrupt
    from checker.engines import forked
    from checker.engines import scenario as engine
    from checker.report.scenario import matrix_lines
    from checker.rules.scenarios import load_scenarios
    from checker.rules.specs import load_eras, load_rules
    from checker.text import printable

    scenarios = load_scenarios(specs)
    if name is None:
        for s in scenarios.values():
            click.echo(printable(f"{s.name}: {s.title}"))
        return 0
    if name not in scenarios:
        known = ", ".join(scenarios) or "none"
        raise InputError(f"unknown scenario '{name}' (known: {known}); see 'checker scenario'")
    chosen = scenarios[name]
    if out is None:
        out = default_trace_directory()
    if out is not None:
        ensure_writable(out)
    eras, rules = load_eras(specs), load_rules(specs)
    for era in chosen.expect:
        if era.split("/")[0] not in eras:
            raise InputError(f"{chosen.path}: [expect] names era '{era}', which specs/eras lacks")
    missing = sorted({cell[3] for cell in engine.cells_to_check(chosen, eras)} - set(rules))
    if missing:
        raise InputError(
            f"an era's rule '{missing[0]}' is not in {specs}/rules; add it, or pass --specs DIR"
        )
    result = engine.run(
        chosen, eras, rules, vcpus=vcpus, hints=hint_store(no_cache), jobs=forked.default_jobs()
    )
    interrupt.check()
    for line in matrix_lines(result):
        click.echo(printable(line))
    if out is not None:
        written = write(result, rules, out / name)
        click.echo(
            printable(f"the write-up and {len(written) - 1} trace files written under {out / name}")
        )
    return result.exit_code


def write(result: ScenarioResult, rules: Mapping[str, Rule], directory: Path) -> list[Path]:
    """Write the write-up and the traces it cites under ``directory``: the traces
    of every violation in the eras the fixes are checked in. The files written."""
    from checker.files import write_text
    from checker.report.scenario import writeup

    scenario = result.scenario
    files: dict[tuple[str, str, str], list[str]] = {}
    written: list[Path] = []
    for cell in result.cells:
        if cell.era not in scenario.fixes_in:
            continue
        for r in cell.results:
            if r.trace is None:
                continue
            paths = _write_trace(result, cell, rules[cell.rule], r.prop.name, directory)
            written += paths
            files[(cell.label, cell.variant, r.prop.name)] = [p.name for p in paths]

    def command(era: str, mmu: str, rule: str, fix: str | None) -> str:
        line = f"checker check --rule {rule} --era {era} --mmu {mmu} --scenario {scenario.name}"
        return line + (f" --fix {fix}" if fix else "")

    readme = directory / "README.md"
    text = writeup(result, files, f"checker scenario {scenario.name}", command)
    try:
        write_text(readme, text)
    except OSError as exc:
        raise InputError(
            f"--out {directory}: cannot write the write-up: {exc.strerror or exc}"
        ) from None
    return [readme, *written]


def _write_trace(
    result: ScenarioResult, cell: Cell, rule: Rule, prop: str, directory: Path
) -> list[Path]:
    """One cell's trace, as 'checker check' writes it; the fix's name first."""
    from checker.cli.check import _provenance, _stem
    from checker.rules.scenarios import SHIPPED
    from checker.traces import graph

    found = cell.result(prop)
    assert found.trace is not None
    fix = None if cell.variant == SHIPPED else cell.variant
    choice = PathsChoice(cell.era, cell.paths, (), result.scenario, fix)
    g = graph.trace_graph(found.trace, _provenance(rule, found.trace.vcpus, choice))
    stem = ("" if fix is None else f"{fix}-") + _stem(found, choice)
    return [Path(p) for p in write_trace(g, directory, stem, directory)]
