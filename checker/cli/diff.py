"""``checker diff``: where two flush rules decide differently, and what it costs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathsChoice,
    PathType,
    max_states_option,
    named_rule,
    one_mmu_options,
    resolve_paths,
    specs_option,
    vcpus_option,
)
from checker.cli.progress import Progress, progress_for, progress_options
from checker.errors import InputError
from checker.report.summary import diff_summary
from checker.schemas import schema_id
from checker.text import vcpu_count

if TYPE_CHECKING:
    from checker.engines.diff import Comparison, Side, Witness
    from checker.model import System
    from checker.rules.specs import Rule

DIFF_EXIT_CODES = (
    """\b
Exit codes:
  0  the rules decide alike on every reachable update
  1  they decide differently somewhere
  2  usage or spec error
  3  more reachable states than --max-states (inconclusive)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=DIFF_EXIT_CODES)
@click.argument("names", nargs=-1, metavar="[RULE_A] [RULE_B]")
@click.option("--expr", "exprs", multiple=True, metavar="C", help="A rule given as C (repeatable).")
@click.option(
    "--kernel",
    "kernels",
    multiple=True,
    type=PathType(path_type=Path),
    help="The rule of a kernel tree or file (repeatable).",
)
@vcpus_option
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {schema_id('diff')})."
)
@max_states_option
@one_mmu_options
@specs_option
@progress_options
def diff(
    names: tuple[str, ...],
    exprs: tuple[str, ...],
    kernels: tuple[Path, ...],
    vcpus: int,
    as_json: bool,
    max_states: int,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    specs: Path,
    show_progress: bool,
    quiet: bool,
) -> int:
    """Compare two rules over every reachable update through mmu_spte_update.

    The two rules are given as names from specs/rules, then --expr, then --kernel,
    in that order: 'checker diff old new', 'checker diff new --expr C',
    'checker diff old --kernel ~/linux'. Prints, per (old SPTE, new SPTE) class
    where they decide differently, which side misses a needed flush or asks for an
    unnecessary one, with a shortest witness trace; and how many reachable updates
    each rule flushes, and how many of those are unnecessary. The last line sums
    it up.
    """
    from checker.model import System

    progress = progress_for(show_progress, quiet, "diff: ")
    rules = _operands(names, exprs, kernels, specs)
    (choice,) = resolve_paths(specs, era, mmu, harvest_flush, enable_flush)
    a, b = ((r.name, System(r, choice.paths)) for r in rules)
    if a[0] == b[0]:
        a, b = (f"{a[0]} (A)", a[1]), (f"{b[0]} (B)", b[1])
    comparison = _compare(a, b, vcpus, max_states, progress)
    if as_json:
        click.echo(json.dumps(_json(comparison, rules, vcpus, choice), indent=2))
    else:
        _print(comparison, rules, vcpus, choice)
        click.echo(f"\n{diff_summary(comparison)['text']}")
    return _exit_code(comparison)


def _exit_code(comparison: Comparison) -> int:
    return 1 if comparison.differences else 0


def _compare(
    a: tuple[str, System], b: tuple[str, System], vcpus: int, max_states: int, progress: Progress
) -> Comparison:
    """:func:`checker.engines.diff.diff`, telling ``progress`` about each rule's exploration."""
    from checker.engines import diff as engine

    sides = []
    for name, system in (a, b):
        with progress.step(f"exploring {name} ({vcpu_count(vcpus)})") as outcome:
            side = engine.reachable_updates(name, system, vcpus, max_states)
            outcome.append(f"{side.states} states, {len(side.updates)} updates")
        sides.append(side)
    return engine.compare(*sides)


def _operands(
    names: tuple[str, ...], exprs: tuple[str, ...], kernels: tuple[Path, ...], specs: Path
) -> list[Rule]:
    from checker.rules.kernel import rule_from_kernel
    from checker.rules.specs import adhoc_rule, load_rules

    count = len(names) + len(exprs) + len(kernels)
    if count != 2:
        raise InputError(
            f"give two rules to compare (got {count}): names, --expr C or --kernel PATH"
        )
    rules: list[Rule] = []
    if names:
        known = load_rules(specs)
        rules += [named_rule(name, known, specs) for name in names]
    for i, text in enumerate(exprs):
        rules.append(adhoc_rule(text, "expr" if len(exprs) == 1 else f"expr{i + 1}"))
    rules += [rule_from_kernel(path) for path in kernels]
    return rules


def _print(comparison: Comparison, rules: list[Rule], vcpus: int, choice: PathsChoice) -> None:
    from checker.traces.view import spte_label

    a, b = comparison.a, comparison.b
    for side, rule in zip((a, b), rules, strict=True):
        click.echo(f"{side.name}: {rule.expression}")
    click.echo(
        f"\nreachable updates through mmu_spte_update ({vcpus} vCPUs, paths: {choice.label}),"
        " as distinct (operation, old SPTE, new SPTE, A/D):"
    )
    width = max(len(a.name), len(b.name), 6)
    click.echo(f"  {'':12} {a.name:>{width}} {b.name:>{width}}")
    for label, field, note in COUNTS:
        line = f"  {label:12} {_count(a, field):>{width}} {_count(b, field):>{width}}"
        click.echo(f"{line}   {note}" if note else line)
    if not comparison.differences:
        click.echo("\nthe two rules decide alike on every reachable update")
        return
    count = len(comparison.differences)
    click.echo(f"\n{count} update class{'es' if count > 1 else ''} decided differently:")
    for i, d in enumerate(comparison.differences, start=1):
        cls = d.update_class
        ad = "A/D bits on" if cls.ad_enabled else "A/D bits off"
        click.echo(
            f"  {i}. {spte_label(cls.old)}  ->  {spte_label(cls.new)}   ({ad}; "
            f"via {', '.join(d.operations)})"
        )
        click.echo(f"     {a.name}: {d.judgement(d.a_flushes)}")
        click.echo(f"     {b.name}: {d.judgement(d.b_flushes)}")
        click.echo(f"     witness under {d.witness.rule}: {_chain(d.witness)}")


#: the per-rule counts: (label, Side attribute, meaning)
COUNTS = (
    ("consulted", "updates", "the rule is asked"),
    ("decided", "decided", "the caller flushes iff it says so"),
    ("flushed", "flushed", ""),
    ("unnecessary", "unnecessary", "flushed, MMU-writable not cleared"),
    ("missed", "missed", "not flushed, MMU-writable cleared"),
)


def _count(side: Side, field: str) -> int:
    return len(getattr(side, field))


def _chain(witness: Witness) -> str:
    steps = []
    for action in witness.actions:
        where = f"@vcpu{action.vcpu}" if action.vcpu is not None else ""
        steps.append(action.label + where)
    stale = " (a writable TLB entry is alive at the update)" if witness.stale_writable else ""
    return ", ".join(steps) + stale


def _json(
    comparison: Comparison, rules: list[Rule], vcpus: int, choice: PathsChoice
) -> dict[str, Any]:
    from checker.engines.diff import replay_witness
    from checker.rules import formula
    from checker.rules.specs import paths_table
    from checker.traces.graph import state_attributes

    def side(s: Side, rule: Rule) -> dict[str, Any]:
        counts = {label: _count(s, field) for label, field, _ in COUNTS}
        return {
            "name": s.name,
            "expression": rule.expression,
            "formula": formula.render(rule.formula),
            **counts,
        }

    def spte(x: Any) -> dict[str, bool]:
        return {f: getattr(x, f) for f in x.__dataclass_fields__}

    differences = []
    for d in comparison.differences:
        cls = d.update_class
        under = comparison.a if d.witness.rule == comparison.a.name else comparison.b
        steps = replay_witness(under.system, d.witness)
        differences.append(
            {
                "old_spte": spte(cls.old),
                "new_spte": spte(cls.new),
                "ad_enabled": cls.ad_enabled,
                "clears_mmu_writable": cls.clears_mmu_writable,
                "change": cls.change(),
                "operations": list(d.operations),
                "decided": d.decided,
                "asserted": d.asserted,
                # keyed a and b, not by the rules' names, so that tools can read them
                "a": d.judgement(d.a_flushes),
                "b": d.judgement(d.b_flushes),
                "witness": {
                    "rule": d.witness.rule,
                    "stale_writable": d.witness.stale_writable,
                    "initial_state": state_attributes(d.witness.initial),
                    "steps": [
                        {
                            "operation": s.action.op,
                            "vcpu": s.action.vcpu,
                            "params": dict(s.action.params),
                            "state": state_attributes(s.after),
                        }
                        for s in steps
                    ],
                },
            }
        )
    return {
        "schema": schema_id("diff"),
        "exit_code": _exit_code(comparison),
        "summary": diff_summary(comparison),
        "vcpus": vcpus,
        "era": choice.label,
        "paths": paths_table(choice.paths),
        "a": side(comparison.a, rules[0]),
        "b": side(comparison.b, rules[1]),
        "differences": differences,
    }
