"""The ``checker`` command: the only module that prints or chooses an exit code.

Commands return their exit code; :func:`main` maps errors to codes and one-line
messages. z3 and networkx are imported inside the commands that need them, so
``--help`` and shell completion stay fast.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker.errors import CheckerError, InputError

if TYPE_CHECKING:
    from checker.check import PropertyResult
    from checker.specs import Rule

EXIT_CODES = """\b
Exit codes:
  0  every property holds
  1  a violation (safety or precision)
  2  usage or spec error
  3  inconclusive (z3 unknown or an exhausted budget)
  4  internal error (a one-line message; the traceback with --debug)
"""

MAX_VCPUS = 256
MAX_DEPTH = 1000


class CheckerGroup(click.Group):
    """A click group whose ``main`` owns the exit codes.

    click's own defaults collide with ours (a ``ClickException`` or any uncaught
    exception exits 1, which means "violation" here), so errors are mapped here:
    usage errors 2, ``CheckerError`` its ``exit_code``, anything else 4, each as one
    line on stderr. Commands return their exit code.
    """

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
        code = _run(self, argv, "checker", complete_var, extra)
        if standalone_mode:
            sys.exit(code)
        return code


def _run(
    group: click.Group,
    argv: list[str],
    prog_name: str,
    complete_var: str | None,
    extra: dict[str, Any],
) -> int:
    debug = "--debug" in argv
    try:
        code = click.Group.main(
            group, argv, prog_name, complete_var, standalone_mode=False, **extra
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


@click.group(
    cls=CheckerGroup,
    epilog=EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--debug", is_flag=True, help="Show the traceback of internal errors.")
def cli(debug: bool) -> None:
    """Model checker for KVM x86's TLB-flush rule on leaf SPTE updates.

    It checks, for every reachable interleaving of vCPUs and KVM paths, that a
    flush is requested iff MMU-writable is cleared while a stale writable TLB
    entry may exist.
    """


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--rule", "rule_name", metavar="NAME", help="A rule from specs/rules (see 'checker rules')."
)
@click.option(
    "--expr", metavar="C", help="An ad-hoc flush condition in C over old_spte and new_spte."
)
@click.option("--all", "all_rules", is_flag=True, help="Check every rule in specs/rules.")
@click.option(
    "--vcpus",
    type=click.IntRange(1, MAX_VCPUS),
    default=2,
    show_default=True,
    help="Number of vCPUs.",
)
@click.option(
    "--depth",
    type=click.IntRange(1, MAX_DEPTH),
    default=30,
    show_default=True,
    help="Longest counterexample searched for (proofs are for all depths).",
)
@click.option(
    "--rlimit",
    type=click.IntRange(1),
    default=None,
    help="z3 work budget per solver; running out is inconclusive (exit 3).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON on stdout; progress goes to stderr."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("counterexamples"),
    show_default=True,
    help="Where counterexample files are written.",
)
@click.option(
    "--specs",
    type=click.Path(path_type=Path),
    default=Path("specs"),
    show_default=True,
    help="The specs directory.",
)
def check(
    rule_name: str | None,
    expr: str | None,
    all_rules: bool,
    vcpus: int,
    depth: int,
    rlimit: int | None,
    as_json: bool,
    out: Path,
    specs: Path,
) -> int:
    """Prove each property of a rule for all depths, or show its shortest violation.

    Properties: stale_w (stale-W coverage), write_tracking, dirty_log (no lost
    write), encoding (W => MW => HW) and precision (no unnecessary flush).
    A proof prints the certified inductive invariant behind it; a violation prints
    the shortest trace and writes it under --out as node-link JSON and GraphML.
    """
    from checker.check import Options
    from checker.smt import Budget

    rules = _select_rules(rule_name, expr, all_rules, specs)
    _ensure_writable(out)
    options = Options(vcpus=vcpus, depth=depth, budget=Budget(rlimit) if rlimit else Budget())
    reports = [_check_rule(rule, options, out, as_json) for rule in rules]
    if as_json:
        document: Any = reports[0] if len(reports) == 1 and not all_rules else {"rules": reports}
        click.echo(json.dumps(document, indent=2))
    return max(int(report["exit_code"]) for report in reports)


@cli.command()
@click.option(
    "--specs",
    type=click.Path(path_type=Path),
    default=Path("specs"),
    show_default=True,
    help="The specs directory.",
)
def rules(specs: Path) -> int:
    """List the rules in specs/rules."""
    from checker.specs import load_rules

    for rule in load_rules(specs).values():
        where = rule.origin.get("kernels", "")
        click.echo(f"{rule.name:10} {rule.expression}" + (f"   [{where}]" if where else ""))
    return 0


# --- check: helpers -----------------------------------------------------------------


def _select_rules(
    rule_name: str | None, expr: str | None, all_rules: bool, specs: Path
) -> list[Rule]:
    from checker.specs import adhoc_rule, load_rules

    chosen = [x for x in (rule_name is not None, expr is not None, all_rules) if x]
    if len(chosen) != 1:
        raise InputError("give exactly one of --rule NAME, --expr C or --all")
    if expr is not None:
        return [adhoc_rule(expr)]
    known = load_rules(specs)
    if all_rules:
        return list(known.values())
    assert rule_name is not None
    if rule_name not in known:
        raise InputError(
            f"unknown rule '{rule_name}' (known: {', '.join(sorted(known))}); "
            f"add {specs}/rules/{rule_name}.toml or use --expr"
        )
    return [known[rule_name]]


def _ensure_writable(out: Path) -> None:
    """Fail before any work if counterexamples could not be written under ``out``."""
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: cannot write there; pass --out with a writable directory")


def _reproduce_command(rule: Rule, vcpus: int) -> str:
    target = (
        f"--rule {rule.name}" if rule.path is not None else f"--expr {shlex.quote(rule.expression)}"
    )
    return f"checker check {target} --vcpus {vcpus}"


def _check_rule(rule: Rule, options: Any, out: Path, as_json: bool) -> dict[str, Any]:
    from checker import formula
    from checker.check import Encodings, check_property, exit_code
    from checker.model import PROPERTIES

    if not as_json:
        click.echo(f"rule {rule.name}: {rule.expression}")
        details = [f"model: {formula.render(rule.formula)}"]
        if "kernels" in rule.origin:
            details.append(f"Linux {rule.origin['kernels']}")
        details.append(f"{options.vcpus} vCPU{'s' if options.vcpus > 1 else ''}")
        click.echo("  " + "; ".join(details))
    results = []
    entries = []
    encodings = Encodings(rule)
    for prop in PROPERTIES:
        started = time.perf_counter()
        result = check_property(rule, prop, options, encodings)
        seconds = time.perf_counter() - started
        files = _write_trace(result, rule, options, out) if result.trace is not None else []
        results.append(result)
        entries.append(_property_json(result, rule, options, files))
        line = _verdict_line(result, rule, seconds)
        if as_json:
            click.echo(f"{rule.name}: {line}", err=True)
        else:
            click.echo("  " + line)
    if not as_json:
        _print_details(results, rule, options, entries)
    from checker import version
    from checker.smt import z3_version

    return {
        "rule": rule.name,
        "expression": rule.expression,
        "formula": formula.render(rule.formula),
        "origin": rule.origin,
        "vcpus": options.vcpus,
        "depth_bound": options.depth,
        "checker_version": version(),
        "z3_version": z3_version(),
        "exit_code": exit_code(results),
        "properties": entries,
    }


def _verdict_line(result: PropertyResult, rule: Rule, seconds: float) -> str:
    verdict = result.verdict.value
    text = (
        f"{result.prop.name:15} {verdict.upper() if verdict != 'holds' else verdict:12} "
        f"{result.engine:10} {seconds:6.2f}s"
    )
    if result.trace is not None:
        text += f"  {result.trace.depth} steps"
    expected = rule.expected.get(result.prop.name)
    if expected is not None:
        text += "  (as expected)" if expected == verdict else f"  (EXPECTED {expected})"
    if result.reason:
        text += f"  {result.reason}"
    return text


def _write_trace(result: PropertyResult, rule: Rule, options: Any, out: Path) -> list[str]:
    from checker import graph, version
    from checker.smt import z3_version

    assert result.trace is not None
    provenance = graph.Provenance(
        expression=rule.expression,
        command=_reproduce_command(rule, options.vcpus),
        checker_version=version(),
        z3_version=z3_version(),
    )
    g = graph.trace_graph(result.trace, provenance)
    try:
        paths = graph.write_counterexample(
            g, out / rule.name, graph.counterexample_stem(result.trace)
        )
    except OSError as exc:
        raise InputError(
            f"--out {out}: cannot write counterexample: {exc.strerror or exc}"
        ) from None
    return [str(p) for p in paths]


def _property_json(
    result: PropertyResult, rule: Rule, options: Any, files: list[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "property": result.prop.name,
        "title": result.prop.title,
        "verdict": result.verdict.value,
        "engine": result.engine,
    }
    if result.prop.name in rule.expected:
        entry["expected"] = rule.expected[result.prop.name]
    if result.proof is not None:
        proof = result.proof
        entry["invariant"] = proof.invariant.render()
        entry["lemmas"] = proof.invariant.to_json()
        entry["invariant_found_with_vcpus"] = proof.found_with
        cert = proof.certificate
        entry["certificate"] = {
            "vcpus": cert.vcpus,
            "initiation": cert.initiation.value,
            "consecution": cert.consecution.value,
            "safety": cert.safety.value,
        }
    if result.trace is not None:
        from checker import graph

        g = graph.trace_graph(result.trace, graph.Provenance(rule.expression, "", "", ""))
        entry["depth"] = result.trace.depth
        entry["replayed"] = True
        entry["steps"] = [
            {"step": i, **g.edges[i - 1, i], "state": g.nodes[i]} for i in range(1, len(g.nodes))
        ]
        entry["initial_state"] = g.nodes[0]
        entry["files"] = files
        entry["command"] = _reproduce_command(rule, options.vcpus)
    if result.reason:
        entry["reason"] = result.reason
    return entry


def _print_details(
    results: Sequence[PropertyResult], rule: Rule, options: Any, entries: list[dict[str, Any]]
) -> None:
    from checker import view

    proofs = [r for r in results if r.proof is not None]
    if proofs:
        click.echo(
            f"\n  proofs, for all depths: inductive invariants certified at {options.vcpus} "
            "vCPUs (initiation, consecution and safety queries UNSAT)"
        )
        for r in proofs:
            assert r.proof is not None
            origin = (
                ""
                if r.proof.found_with == options.vcpus
                else f" (found with {r.proof.found_with} vCPUs)"
            )
            click.echo(f"    {r.prop.name}{origin}:")
            for line in r.proof.invariant.render():
                click.echo(f"      {line}")
    for r, entry in zip(results, entries, strict=True):
        if r.trace is None:
            continue
        click.echo(
            f"\n  {r.prop.name} violated in {r.trace.depth} steps "
            "(shortest; replayed through the step function)"
        )
        click.echo(f"  property: {r.prop.statement}")
        for line in view.step_table(r.trace):
            click.echo("    " + line)
        click.echo(f"    files: {', '.join(entry['files'])}")
        click.echo(f"    reproduce: {entry['command']}")
    click.echo("")


# --- entry point ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """The ``checker`` console script: run the CLI, return its exit code."""
    return cli.main(args=argv, prog_name="checker", standalone_mode=False)
