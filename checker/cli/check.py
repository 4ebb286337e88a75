"""``checker check``: prove each property of a rule, or show its shortest violation."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker import process
from checker.cli import EXIT_CODES
from checker.cli.common import (
    MAX_DEPTH,
    PathsChoice,
    PathType,
    cache_option,
    default_trace_directory,
    ensure_writable,
    hint_store,
    kernel_location,
    max_states_option,
    out_option,
    paths_options,
    reproduce_command,
    resolve_paths,
    scenario_options,
    select_rules,
    specs_option,
    trace_directory_name,
    vcpus_option,
    write_trace,
)
from checker.cli.progress import Progress, progress_for, progress_options
from checker.errors import CheckerError
from checker.schemas import schema_id
from checker.text import vcpu_count
from checker.verdict import Verdict

#: the engines --engine accepts, without importing the engines to list them
ENGINES = ("smt", "explicit", "all", "spin")

if TYPE_CHECKING:
    from checker.engines.check import Options, PropertyResult
    from checker.engines.hints import HintStore
    from checker.report.document import CheckedProperty, CheckedRule
    from checker.rules.specs import Rule
    from checker.traces.graph import TraceGraph


@click.command(epilog=EXIT_CODES)
@click.option(
    "--rule", "rule_name", metavar="NAME", help="A rule from specs/rules (see 'checker rules')."
)
@click.option(
    "--expr", metavar="C", help="An ad-hoc flush condition in C over old_spte and new_spte."
)
@click.option(
    "--kernel",
    type=PathType(path_type=Path),
    help="The rule of a kernel tree (or its spte.h/mmu.c); see 'checker extract'.",
)
@click.option("--all", "all_rules", is_flag=True, help="Check every rule in specs/rules.")
@vcpus_option
@click.option(
    "--depth",
    type=click.IntRange(1, MAX_DEPTH),
    default=30,
    show_default=True,
    help="Longest counterexample searched for while no violation is known (proofs are "
    "for all depths; a violation Spacer finds is traced however long, and says so).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="smt",
    show_default=True,
    help="smt: Spacer proofs and BMC traces; explicit: breadth-first over the "
    "reachable states, no z3; all: both, which must agree (else exit 4); spin: the "
    "model exported to Promela, searched by SPIN (needs spin and cc).",
)
@click.option(
    "--rlimit",
    type=click.IntRange(1),
    default=None,
    help="z3 work budget per solver; running out is inconclusive (exit 3).",
)
@max_states_option
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {schema_id('check')})."
)
@out_option("Where counterexample files are written (under a folder per rule).")
@cache_option
@paths_options
@scenario_options
@specs_option
@progress_options
def check(
    rule_name: str | None,
    expr: str | None,
    kernel: Path | None,
    all_rules: bool,
    vcpus: int,
    depth: int,
    engine: str,
    rlimit: int | None,
    max_states: int,
    as_json: bool,
    out: Path | None,
    no_cache: bool,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    scenario: str | None,
    fix: str | None,
    specs: Path,
    show_progress: bool,
    quiet: bool,
) -> int:
    """Prove each property of a rule for all depths, or show its shortest violation.

    Properties: stale_w (stale-W coverage), write_tracking, dirty_log (no lost
    write), encoding (W => MW => HW) and precision (no unnecessary flush).
    A proof prints the certified inductive invariant behind it; a violation prints
    the shortest trace and writes it under --out as node-link JSON and GraphML.
    Without --out, traces go to counterexamples/ only when run inside the checker's
    checkout; elsewhere (say, in a kernel tree) nothing is written.
    The last line sums up: which rules hold, which violate as their spec expects,
    and anything NOT AS EXPECTED or INCONCLUSIVE.
    """
    if engine in ("smt", "all"):
        from checker.engines import smt

        # z3 is imported: its context is made on the other core while the engines
        # are imported and the input is read. The thread never outlives the
        # command, even one that fails on its input before anything waited for it
        smt.make_main_context_ahead()
        click.get_current_context().call_on_close(smt.wait_for_main_context)
    from checker.engines.check import Engine, Options
    from checker.engines.smt import Budget

    progress = progress_for(show_progress, quiet, live_stdout=not as_json)
    hints = hint_store(no_cache)
    # a spec's expression parsed in an earlier run is read back, not parsed again
    # (loading the C parser costs more than deciding a property from a hint)
    memo = hints.directory if hints is not None else None
    rules = select_rules(rule_name, expr, all_rules, specs, kernel, memo)
    # every choice is resolved before anything is checked: a bad --era fails at once
    choices = {
        id(rule): resolve_paths(specs, era, mmu, harvest_flush, enable_flush, rule, scenario, fix)
        for rule in rules
    }
    if out is None:
        out = default_trace_directory()
    if out is not None:
        ensure_writable(out)
    budget = Budget(rlimit) if rlimit else Budget()
    units = [
        (
            rule,
            choice,
            Options(
                vcpus=vcpus,
                depth=depth,
                paths=choice.paths,
                shape=choice.shape,
                budget=budget,
                engine=Engine(engine),
                max_states=max_states,
            ),
        )
        for rule in rules
        for choice in choices[id(rule)]
    ]
    checked = []
    process.collect_from_now()  # everything is imported and read: the work starts
    decided = _decided_elsewhere(units, hints)
    try:
        for rule, choice, options in units:
            checked.append(
                check_rule(rule, options, choice, out, as_json, progress, quiet, hints, decided)
            )
        from checker.report import document  # imported in check_rule already

        if as_json:
            click.echo(document.render(document.check_json(checked)))
        else:
            from checker.text import printable

            click.echo(printable(document.check_summary(checked).text))
    finally:
        if decided is not None:
            decided.close()  # stops the processes still running, reaps the others
    return max(r.exit_code for r in checked)


def check_rule(
    rule: Rule,
    options: Options,
    choice: PathsChoice,
    out: Path | None,
    as_json: bool,
    progress: Progress | None = None,
    quiet: bool = False,
    hints: HintStore | None = None,
    decided: Iterator[tuple[str, Any]] | None = None,
) -> CheckedRule:
    """Check every property of ``rule``, print as it goes (the verdicts on stdout
    unless ``as_json``; ``progress`` on stderr, and with ``as_json`` where traces
    would go unless ``quiet``), write the traces to ``out``, return what was found.
    ``hints``: where what earlier runs found is kept (None: not used); ``decided``:
    where the properties were decided already (the next answer is this rule's, from
    :func:`_decide_all`), else they are decided here."""
    from checker import interrupt
    from checker.model import PROPERTIES
    from checker.rules import formula
    from checker.text import one_line, printable

    if not as_json:
        # the rule's text and origin come from the user or a file: shown, not obeyed
        click.echo(f"rule {rule.name}: {one_line(rule.expression)}")
        details = [f"model: {formula.render(rule.formula)}"]
        if "kernels" in rule.origin:
            details.append(f"Linux {rule.origin['kernels']}")
        if "release" in rule.origin:
            details.append(f"Linux {rule.origin['release']} (the tree's Makefile)")
        details.append(f"paths: {choice.label}")
        if choice.scenario is not None:
            details.append(f"scenario {choice.scenario.name}: {choice.shape.describe()}")
        details.append(vcpu_count(options.vcpus))
        click.echo("  " + printable("; ".join(details)))
    results = []
    expected = _expected(rule, choice)
    timed = decide(rule, options, hints) if decided is None else _received(decided)
    for prop in PROPERTIES:
        if progress is not None:
            progress.started(f"{rule.name}: {prop.name}")
        result, seconds = next(timed)
        results.append(result)
        line = _verdict_line(result, expected, seconds)
        if progress is not None:
            progress.finished(f"{rule.name}:", printable(line))
        if not as_json:
            click.echo("  " + printable(line))
    # traces are written once every property is decided: Ctrl-C before this point
    # leaves --out as it was
    interrupt.check()
    # imported once the properties are decided (the forked processes, if any,
    # start without it: they do not need it)
    from checker.report.document import CheckedProperty, CheckedRule

    checked = []
    for result in results:
        trace = _trace_graph(result, rule, choice)
        files = (
            _write_trace(trace, result, rule, choice, out)
            if trace is not None and out is not None
            else ()
        )
        checked.append(CheckedProperty(result, expected.get(result.prop.name), trace, files))
    unwritten = None
    if out is None:

        def unwritten(result: PropertyResult) -> str:
            return _unwritten(result, rule, choice)

        traced = [r for r in results if r.trace is not None]
        if traced and as_json and not quiet:
            click.echo(printable(f"{rule.name}: {_unwritten(None, rule, choice)}"), err=True)
    if not as_json:
        if rule.selector[0] == "--kernel":
            for line in compiler_lines(results, rule):
                click.echo(printable(line))
        _print_details(checked, options, rule.expression, unwritten)
    return CheckedRule(rule, choice.label, options, tuple(checked))


def decide(
    rule: Rule, options: Options, hints: HintStore | None
) -> Iterator[tuple[PropertyResult, float]]:
    """Each property of ``rule`` (in the order of ``PROPERTIES``) decided with
    ``options``, and the seconds it took, as it is decided."""
    from checker.engines.check import Session, check_property
    from checker.model import PROPERTIES, System

    session = Session(System(rule, options.paths, options.shape), options.max_states, hints)
    for prop in PROPERTIES:
        started = time.perf_counter()
        result = check_property(rule, prop, options, session)
        yield result, time.perf_counter() - started


def _decide_all(rule: Rule, options: Options, hints: HintStore | None) -> tuple[str, Any]:
    """In a forked process: :func:`decide`'s every answer, or the exception that is
    not a :class:`~checker.errors.CheckerError` (those the forked module reports
    itself) with its traceback, to be raised again as it is (the same message and
    exit code as in a single process)."""
    try:
        return "ok", tuple(decide(rule, options, hints))
    except CheckerError:
        raise
    except Exception as exc:
        import pickle
        import traceback

        try:
            pickle.dumps(exc)
        except Exception:
            raise exc from None
        return "raised", (exc, traceback.format_exc())


def _received(decided: Iterator[tuple[str, Any]]) -> Iterator[tuple[PropertyResult, float]]:
    """The rule's results, from the next answer of the forked processes, waited for
    only when its first result is asked for: the first property's progress line is
    shown while they work, as it is when the properties are decided here."""
    from checker.engines.forked import RemoteTraceback

    kind, value = next(decided)
    if kind == "raised":
        exc, remote = value
        raise exc from RemoteTraceback(remote)
    yield from value


def _decided_elsewhere(
    units: Sequence[tuple[Rule, PathsChoice, Options]], hints: HintStore | None
) -> Generator[tuple[str, Any], None, None] | None:
    """Where there is more than one rule and paths to check and more than one core:
    their properties decided two at a time, in forked processes (the last rule and
    paths in this one, while the others run: :func:`checker.engines.forked.run`),
    as ``_decide_all``'s answers, in order; else None, and each is decided as it
    is shown. The answers are the same either way: each computation is
    deterministic, and each process keeps its own hints."""
    from checker.engines.check import Engine

    if len(units) < 2 or any(options.engine is Engine.SPIN for _, _, options in units):
        return None
    from checker.engines import forked

    jobs = forked.default_jobs()
    if jobs < 2:
        return None
    tasks = [(rule, options, hints) for rule, _, options in units]
    return forked.run(_decide_all, tasks, jobs)


def _expected(rule: Rule, choice: PathsChoice) -> dict[str, Verdict]:
    """The spec's expected verdicts: they are stated for the rule's own era (both
    MMUs), without overrides; a scenario's, for the rule of each era."""
    if choice.overrides:
        return {}
    if choice.scenario is not None:
        return choice.scenario.expected(choice.era, choice.mmu, choice.fix, rule.name)
    return rule.expected_for(choice.era, choice.mmu)


def _verdict_line(result: PropertyResult, expectations: dict[str, Verdict], seconds: float) -> str:
    word = result.verdict.value
    shown = word if result.verdict is Verdict.HOLDS else word.upper()
    text = f"{result.prop.name:15} {shown:12} {result.engine:10} {seconds:6.2f}s"
    if result.trace is not None:
        vcpus = result.trace.vcpus
        text += f"  {result.trace.depth} steps, {vcpu_count(vcpus)}"
    elif result.proof is not None and result.proof.all_vcpus is not None:
        text += "  (any number of vCPUs)" if result.proof.all_vcpus.ok else ""
    if result.exploration is not None:
        seen = result.exploration
        text += f"  [{seen.raw_states} states, {seen.reduced_states} up to symmetry]"
    expected = expectations.get(result.prop.name)
    if expected is not None:
        text += (
            "  (as expected)" if expected is result.verdict else f"  (EXPECTED {expected.value})"
        )
    if result.reason:
        text += f"  {result.reason}"
    return text


def _trace_graph(result: PropertyResult, rule: Rule, choice: PathsChoice) -> TraceGraph | None:
    """A violation's trace as its files hold it; None without a trace."""
    if result.trace is None:
        return None
    from checker.traces import graph

    return graph.trace_graph(result.trace, _provenance(rule, result.trace.vcpus, choice))


def _write_trace(
    g: TraceGraph, result: PropertyResult, rule: Rule, choice: PathsChoice, out: Path
) -> tuple[str, ...]:
    return write_trace(g, out / trace_directory_name(rule), _stem(result, choice), out)


def _stem(result: PropertyResult, choice: PathsChoice) -> str:
    from checker.traces import graph

    assert result.trace is not None
    stem = graph.counterexample_stem(result.trace)
    return f"{stem}-{choice.label.replace('/', '-')}"


def _unwritten(result: PropertyResult | None, rule: Rule, choice: PathsChoice) -> str:
    """What to say when a trace was found but not written (no --out outside the
    checkout): where ``result``'s trace would go (any of the rule's, for None) and
    how to ask for it."""
    name = f"{_stem(result, choice)}.json" if result is not None else ""
    example = f"DIR/{trace_directory_name(rule)}/{name}"
    return (
        "trace files not written (outside the checker's checkout nothing is written "
        f"unless asked); add --out DIR to write them, e.g. {example}"
    )


def compiler_lines(results: Sequence[PropertyResult], rule: Rule) -> list[str]:
    """A kernel rule's violations as a compiler reports them, one per line:
    ``arch/x86/kvm/mmu/spte.h:503: error: stale_w violated: ...``, at the line of
    the rule's expression (as ``checker extract`` finds it), the path relative to
    the tree's root, so that editors and CI logs link to it. A safety property's
    violation is an ``error``; precision's is a ``warning``: an unneeded flush costs
    time, never correctness, as the kernel's own -W warnings flag code that works
    but should not be written so."""
    if rule.path is None:
        return []
    where = kernel_location(rule)
    lines = []
    for r in results:
        if r.verdict is not Verdict.VIOLATED:
            continue
        severity = "error" if r.prop.safety else "warning"
        steps = ""
        if r.trace is not None:
            vcpus = r.trace.vcpus
            steps = f" ({r.trace.depth} steps, {vcpu_count(vcpus)})"
        lines.append(f"{where}: {severity}: {r.prop.name} violated: {r.prop.statement}{steps}")
    return lines


def _provenance(rule: Rule, vcpus: int, choice: PathsChoice) -> Any:
    from checker import version
    from checker.engines.smt import z3_version
    from checker.traces import graph

    return graph.Provenance(
        expression=rule.expression,
        command=reproduce_command(rule, vcpus, choice),
        checker_version=version(),
        z3_version=z3_version(),
        era=choice.label,
    )


def _print_details(
    checked: Sequence[CheckedProperty],
    options: Options,
    expression: str,
    unwritten: Callable[[PropertyResult], str] | None = None,
) -> None:
    proofs = [p.result for p in checked if p.result.proof is not None]
    if proofs:
        click.echo(
            f"\n  proofs, for all depths: inductive invariants certified at "
            f"{vcpu_count(options.vcpus)} (initiation, consecution and safety queries UNSAT)"
        )
        for r in proofs:
            assert r.proof is not None
            found = r.proof.found_with
            origin = "" if found == options.vcpus else f" (found with {vcpu_count(found)})"
            click.echo(f"    {r.prop.name}{origin}:")
            for line in r.proof.invariant.render():
                click.echo(f"      {line}")
            every = r.proof.all_vcpus
            if every is not None and every.ok:
                click.echo(
                    "      => holds for every number of vCPUs "
                    "(certified over an uninterpreted vCPU sort)"
                )
            elif every is not None:
                why = every.reason or "the invariant is not inductive for every vCPU count"
                click.echo(f"      (not certified for every number of vCPUs: {why})")
    traced = [p for p in checked if p.result.trace is not None and p.trace is not None]
    if traced:
        # the view is loaded only for a trace to show (it takes a while to import,
        # and a rule that holds shows none)
        _print_traces(traced, options, expression, unwritten)
    click.echo("")


def _print_traces(
    traced: Sequence[CheckedProperty],
    options: Options,
    expression: str,
    unwritten: Callable[[PropertyResult], str] | None,
) -> None:
    from checker.traces import view

    # the same view as 'checker show', coloured on the same terms
    colour = view.use_colour(None, sys.stdout.isatty(), os.environ)
    legend = True
    for p in traced:
        r = p.result
        assert r.trace is not None and p.trace is not None
        vcpus = r.trace.vcpus
        fewest = (
            "" if vcpus == options.vcpus else f" ({vcpu_count(vcpus)}: the fewest that show it)"
        )
        if p.files:
            where = f"written to {', '.join(p.files)}"
        else:
            where = unwritten(r) if unwritten is not None else ""
        about = [f"shortest trace{fewest}, replayed through the step function; {where}"]
        click.echo("")
        for line in view.render(
            r.trace,
            expression,
            p.trace.graph["command"],
            about=about,
            paint=view.ansi if colour else view.plain,
            legend=legend,
            ascii=view.needs_ascii(sys.stdout.encoding),
        ):
            click.echo(f"  {line}" if line else "", color=colour)
        legend = False  # once is enough
