"""``checker synth``: the weakest safe flush rule, derived from the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    MAX_VCPUS,
    MMUS,
    PathsChoice,
    PathType,
    cache_option,
    ensure_file_writable,
    hint_store,
    max_states_option,
    named_rule,
    resolve_paths,
    specs_option,
    write_file,
)
from checker.cli.progress import Progress, progress_for, progress_options
from checker.errors import InputError
from checker.rules.specs import DEFAULT_ERA
from checker.schemas import schema_id
from checker.text import vcpu_count

if TYPE_CHECKING:
    from checker.engines.check import PropertyResult
    from checker.engines.hints import HintStore
    from checker.engines.synth import Classification, ClassInfo, Combined, Synthesis
    from checker.rules.specs import Rule

SYNTH_EXIT_CODES = (
    """\b
Exit codes:
  0  the derived rule holds every property the era allows (and equals the
     compared rule on every reachable class, with --compare/--kernel)
  1  it does not, or the compared rule differs somewhere
  2  usage or spec error
  3  inconclusive (z3 unknown, or more states than --max-states)
  4  internal error
"""
    + SIGNAL_EXIT_CODES
)


@click.command(epilog=SYNTH_EXIT_CODES)
@click.option(
    "--era",
    metavar="NAME",
    default=None,
    show_default=DEFAULT_ERA,
    help="The kernel era, from specs/eras (see 'checker rules').",
)
@click.option(
    "--since",
    metavar="RELEASE",
    default=None,
    help="Every era from the one holding RELEASE (e.g. 6.13) to today, and the one "
    "rule safe in all of them.",
)
@click.option("--mmu", type=click.Choice(MMUS), default="both", show_default=True)
@click.option("--compare", "compare", metavar="RULE", help="Compare a rule of specs/rules.")
@click.option(
    "--kernel",
    type=PathType(path_type=Path),
    help="Compare the rule of a kernel tree or file.",
)
@click.option("--vcpus", type=click.IntRange(1, MAX_VCPUS), default=2, show_default=True)
@click.option(
    "--write",
    "write",
    type=PathType(path_type=Path),
    help="Write the derived rule as a spec file (e.g. specs/rules/derived.toml).",
)
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {schema_id('synth')})."
)
@max_states_option
@specs_option
@cache_option
@progress_options
def synth(
    era: str | None,
    since: str | None,
    mmu: str,
    compare: str | None,
    kernel: Path | None,
    vcpus: int,
    write: Path | None,
    as_json: bool,
    max_states: int,
    specs: Path,
    no_cache: bool,
    show_progress: bool,
    quiet: bool,
) -> int:
    """Derive the weakest safe flush rule from the model.

    Every (old SPTE, new SPTE, A/D) class the rule is asked about in the reachable
    states (explored with --vcpus vCPUs) is classified: needed (skipping its flush
    breaks a safety property: the shortest witness, replayed), not needed, must
    not flush (a caller asserts the answer), ignored (no caller uses the answer).
    The rule that flushes exactly on the needed classes, free on the others no
    caller constrains, is minimised into C over the kernel's helpers and checked
    with the SMT engine: every property, for every number of vCPUs.
    """
    from checker.engines import forked
    from checker.engines import synth as engine
    from checker.rules.specs import load_eras

    if era is not None and since is not None:
        raise InputError("give --era or --since, not both")
    if compare is not None and kernel is not None:
        raise InputError("give --compare or --kernel, not both")
    if write is not None:
        ensure_file_writable(write, "--write")
    progress = progress_for(show_progress, quiet, "synth: ")
    other = _other_rule(compare, kernel, specs)
    eras = load_eras(specs)
    names = [era or DEFAULT_ERA] if since is None else _since(eras, since)
    choices = [c for name in names for c in _choices(specs, name, mmu, eras)]
    name = write.stem if write is not None else "derived"
    hints = hint_store(no_cache)
    jobs = forked.default_jobs()
    # an era whose paths are another's where the one-gfn model reads them (the
    # shadow MMU of v5.7-v5.19) has the same model, so the same classes, rule and
    # verdicts: synthesised once
    distinct: dict[Any, PathsChoice] = {}
    for choice in choices:
        distinct.setdefault(choice.paths.one_gfn(), choice)
    tasks = [(c.paths, vcpus, max_states, c.label, name, hints) for c in distinct.values()]
    labels = [f"{c.label} ({vcpus} vCPUs)" for c in distinct.values()]
    done: dict[Any, Synthesis] = {}
    if jobs > 1 and len(tasks) > 1:
        # each process minimises, and so does this one for the combined rule
        from checker.rules import minimise

        minimise.preload()
    answers = forked.run(
        engine.synthesize_timed, tasks, jobs, lambda i: progress.started(labels[i])
    )
    for label, (found, seconds) in zip(labels, answers, strict=True):
        c = found.classification
        progress.finished(
            label, f"{len(c.classes)} classes, {c.explorations} explorations {seconds:.2f}s"
        )
        done[c.paths.one_gfn()] = found
    results = [engine.relabelled(done[c.paths.one_gfn()], c.label) for c in choices]
    combined = None
    if len(results) > 1:
        combined = _combine(results, name, vcpus, progress, hints, jobs)
    if as_json:
        click.echo(json.dumps(_json(results, combined, other, vcpus), indent=2))
    else:
        _print(results, combined, other, vcpus)
    if write is not None:
        write_file(write, _spec(results, combined, name), "--write")
        if not quiet:
            click.echo(f"\nwrote {write}", err=True)
    return _exit_code(results, combined, other)


def _since(eras: dict[str, Any], since: str) -> list[str]:
    from checker.rules.specs import era_of_release

    try:
        major, minor = (int(x) for x in since.lstrip("v").split("."))
    except ValueError:
        raise InputError(f"--since {since}: not a release like 6.13") from None
    first = era_of_release(eras, (major, minor))
    if first is None:
        raise InputError(f"--since {since}: no era covers that release")
    return [e.name for e in eras.values() if e.first >= first.first]


def _choices(specs: Path, name: str, mmu: str, eras: dict[str, Any]) -> list[PathsChoice]:
    if mmu != "both" and name in eras:
        from checker.model.paths import Mmu

        if Mmu(mmu) not in eras[name].mmus:
            return []  # --since over eras that lack this MMU
    return resolve_paths(specs, name, mmu, None, None)


def _other_rule(compare: str | None, kernel: Path | None, specs: Path) -> Rule | None:
    if compare is not None:
        from checker.rules.specs import load_rules

        return named_rule(compare, load_rules(specs), specs)
    if kernel is not None:
        from checker.rules.kernel import rule_from_kernel

        return rule_from_kernel(kernel)
    return None


def _combine(
    results: list[Synthesis],
    name: str,
    vcpus: int,
    progress: Progress,
    hints: HintStore | None,
    jobs: int,
) -> tuple[Combined, list[tuple[PropertyResult, ...]]]:
    from checker.engines import forked
    from checker.engines import synth as engine

    combined = engine.combine([r.classification for r in results], name)
    done: dict[Any, tuple[PropertyResult, ...]] = {}
    for r in results:
        if r.rule.expression == combined.rule.expression:
            # the part's own rule, checked already
            done[r.classification.paths] = r.results
    todo: dict[Any, str] = {}
    for r in results:
        todo.setdefault(r.classification.paths, r.label)
    paths = [p for p in todo if p not in done]
    tasks = [(combined.rule, p, vcpus, hints) for p in paths]
    labels = [f"checking the combined rule in {todo[p]}" for p in paths]
    timed = forked.run(engine.check_rule_timed, tasks, jobs, lambda i: progress.started(labels[i]))
    for p, label, (checked, seconds) in zip(paths, labels, timed, strict=True):
        progress.finished(label, f"{seconds:.2f}s")
        done[p] = checked
    return combined, [done[r.classification.paths] for r in results]


def _exit_code(
    results: list[Synthesis],
    combined: tuple[Combined, list[tuple[PropertyResult, ...]]] | None,
    other: Rule | None,
) -> int:
    from checker.engines.synth import judge
    from checker.verdict import Verdict

    verdicts = [r.verdict for s in results for r in s.results]
    if combined is not None:
        verdicts += [r.verdict for checks in combined[1] for r in checks]
    if any(not s.safe or not s.precise for s in results):
        return 1
    if combined is not None:
        for s, checks in zip(results, combined[1], strict=True):
            broken = s.classification.broken
            if any(r.verdict is Verdict.VIOLATED and r.prop.name not in broken for r in checks):
                return 1
    if other is not None and any(
        j.verdict not in ("ok", "free") for s in results for j in judge(other, s.classification)
    ):
        return 1
    if Verdict.INCONCLUSIVE in verdicts:
        return 3
    return 0


# --- text --------------------------------------------------------------------------------


def _print(
    results: list[Synthesis],
    combined: tuple[Combined, list[tuple[PropertyResult, ...]]] | None,
    other: Rule | None,
    vcpus: int,
) -> None:
    for i, s in enumerate(results):
        if i:
            click.echo("")
        _print_one(s, other, vcpus)
    if combined is not None:
        _print_combined(results, combined, other)


def _print_one(s: Synthesis, other: Rule | None, vcpus: int) -> None:
    from checker.engines.synth import Need, judge
    from checker.traces.view import spte_label

    c = s.classification
    click.echo(
        f"{s.label}: {len(c.classes)} update classes where the rule is asked, reachable "
        f"with {vcpus} vCPUs (explicit exploration, {c.states} states under the base rule)"
    )
    judged = {j.info.update_class: j for j in judge(other, c)} if other is not None else {}
    header = f"  {'#':>3}  {'old SPTE':<24} {'new SPTE':<24} {'A/D':<3}  {'need':<14}"
    if other is not None:
        header += f"  {other.name}"
    click.echo(header)
    for n, info in enumerate(c.sorted(), start=1):
        cls = info.update_class
        line = (
            f"  {n:>3}  {spte_label(cls.old):<24} {spte_label(cls.new):<24} "
            f"{'on' if cls.ad_enabled else 'off':<3}  {info.need.value:<14}"
        )
        if other is not None:
            j = judged[cls]
            line += f"  {'flush' if j.flushes else 'no flush':<8}"
            if j.verdict not in ("ok", "free"):
                line += f": {j.verdict.upper()}"
        click.echo(f"{line}   via {_callers(info)}")
    counts = ", ".join(f"{len(c.needing(n))} {n.value}" for n in Need if c.needing(n))
    click.echo(f"  ({counts})")
    for prop, trace in c.broken.items():
        click.echo(
            f"  {prop} is violated whatever the rule answers where callers act on it: "
            f"{_chain(trace)}"
        )
    needed = [info for info in c.sorted() if info.witness is not None]
    if needed:
        click.echo("  witnesses (the shortest trace without that class's flush, replayed):")
        for info in needed:
            assert info.witness is not None
            n = c.sorted().index(info) + 1
            t = info.witness.trace
            click.echo(
                f"  {n:>3}. {t.prop.name} violated in {t.depth} steps with {t.vcpus} vCPU"
                f"{'s' if t.vcpus > 1 else ''}; step {info.witness.skipped_step} skips "
                f"the flush: {_chain(t)}"
            )
    m = s.minimised
    click.echo(f"  derived rule: {s.rule.expression}")
    if m.helpers:
        click.echo(
            f"    ({m.form}, {m.literals} literal{'s' if m.literals != 1 else ''} over "
            f"{len(m.helpers)} helper{'s' if len(m.helpers) != 1 else ''}; sympy)"
        )
    click.echo(f"  checked (SMT, every number of vCPUs): {_verdicts(s.results)}")
    if not s.safe and c.needing(Need.NOT_NEEDED):
        click.echo(
            "  'not needed' is not certified: the rule that skips all those flushes "
            "is not proved safe (each was skipped alone, with "
            f"{vcpu_count(vcpus)})"
        )
    if other is not None:
        _print_comparison(other, list(judged.values()), c)


def _print_comparison(other: Rule, judged: list[Any], c: Classification) -> None:
    wrong = [j for j in judged if j.verdict not in ("ok", "free")]
    if not wrong:
        click.echo(f"  {other.name} equals the derived rule on every reachable class")
        return
    click.echo(f"  {other.name} differs from the derived rule on {len(wrong)} reachable classes:")
    order = c.sorted()
    for j in wrong:
        n = order.index(j.info) + 1
        note = f"  {n:>3}. {j.verdict} ({j.info.update_class.change()})"
        if j.info.witness is not None and not j.flushes:
            note += f": {_chain(j.info.witness.trace)}"
        click.echo(note)


def _print_combined(
    results: list[Synthesis],
    combined: tuple[Combined, list[tuple[PropertyResult, ...]]],
    other: Rule | None,
) -> None:
    from checker.engines.synth import judge

    rule, checks = combined[0].rule, combined[1]
    click.echo(f"\none rule for {', '.join(s.label for s in results)}:")
    click.echo(f"  {rule.expression}")
    if combined[0].conflicts:
        click.echo(
            f"  {len(combined[0].conflicts)} classes are needed in one and asserted "
            "false in another: no rule is safe in all"
        )
    click.echo(f"  {'era/MMU':<18} {'needless':>8}  checked (SMT, every number of vCPUs)")
    for s, results_ in zip(results, checks, strict=True):
        needless = sum(1 for j in judge(rule, s.classification) if j.verdict == "needless flush")
        note = "".join(
            f" ({p} is broken in this era whatever the rule)" for p in s.classification.broken
        )
        click.echo(f"  {s.label:<18} {needless:>8}  {_verdicts(results_)}{note}")
    if other is not None:
        same = all(
            (_flushes(other, info) == _flushes(rule, info))
            for s in results
            for info in s.classification.classes.values()
            if info.need.required is not None
        )
        click.echo(
            f"  {other.name} {'equals' if same else 'differs from'} this rule on every "
            "class some era constrains"
        )


def _flushes(rule: Rule, info: ClassInfo) -> bool:
    from checker.engines.synth import rule_flushes

    return rule_flushes(rule, info.update_class)


def _callers(info: ClassInfo) -> str:
    return ", ".join(f"{op} ({use.value})" for op, use in sorted(info.callers.items()))


def _chain(trace: Any) -> str:
    return ", ".join(
        s.action.label + (f"@vcpu{s.action.vcpu}" if s.action.vcpu is not None else "")
        for s in trace.steps
    )


def _verdicts(results: tuple[PropertyResult, ...]) -> str:
    return ", ".join(f"{r.prop.name} {r.verdict.value}" for r in results)


# --- JSON and the spec file ---------------------------------------------------------------


def _json(
    results: list[Synthesis],
    combined: tuple[Combined, list[tuple[PropertyResult, ...]]] | None,
    other: Rule | None,
    vcpus: int,
) -> dict[str, Any]:
    from checker.engines.synth import judge
    from checker.rules.specs import paths_table
    from checker.traces.graph import state_attributes

    def spte(x: Any) -> dict[str, bool]:
        return {f: getattr(x, f) for f in x.__dataclass_fields__}

    def trace(t: Any) -> dict[str, Any]:
        return {
            "property": t.prop.name,
            "vcpus": t.vcpus,
            "initial_state": state_attributes(t.initial),
            "steps": [
                {
                    "operation": s.action.op,
                    "vcpu": s.action.vcpu,
                    "params": dict(s.action.params),
                    "state": state_attributes(s.after),
                }
                for s in t.steps
            ],
        }

    def one(s: Synthesis) -> dict[str, Any]:
        c = s.classification
        judged = {j.info.update_class: j for j in judge(other, c)} if other is not None else {}
        classes = []
        for info in c.sorted():
            cls = info.update_class
            entry: dict[str, Any] = {
                "old_spte": spte(cls.old),
                "new_spte": spte(cls.new),
                "ad_enabled": cls.ad_enabled,
                "change": cls.change(),
                "callers": {op: use.value for op, use in sorted(info.callers.items())},
                "need": info.need.value,
                "derived_flushes": _flushes(s.rule, info),
            }
            if info.witness is not None:
                entry["witness"] = {
                    **trace(info.witness.trace),
                    "skipped_step": info.witness.skipped_step,
                }
            if other is not None:
                entry["compared"] = {
                    "flushes": judged[cls].flushes,
                    "verdict": judged[cls].verdict,
                }
            classes.append(entry)
        return {
            "label": s.label,
            "paths": paths_table(c.paths),
            "states": c.states,
            "broken": {p: trace(t) for p, t in c.broken.items()},
            "classes": classes,
            "rule": {
                "expression": s.rule.expression,
                "form": s.minimised.form,
                "literals": s.minimised.literals,
                "helpers": list(s.minimised.helpers),
            },
            "results": {r.prop.name: r.verdict.value for r in s.results},
        }

    doc: dict[str, Any] = {
        "schema": schema_id("synth"),
        "exit_code": _exit_code(results, combined, other),
        "vcpus": vcpus,
        "compared": None if other is None else {"name": other.name, "expression": other.expression},
        "eras": [one(s) for s in results],
    }
    if combined is not None:
        rule, checks = combined[0].rule, combined[1]
        doc["combined"] = {
            "expression": rule.expression,
            "conflicts": len(combined[0].conflicts),
            "per_era": [
                {
                    "label": s.label,
                    "needless": sum(
                        1 for j in judge(rule, s.classification) if j.verdict == "needless flush"
                    ),
                    "results": {r.prop.name: r.verdict.value for r in rs},
                }
                for s, rs in zip(results, checks, strict=True)
            ],
        }
    return doc


def _spec(
    results: list[Synthesis],
    combined: tuple[Combined, list[tuple[PropertyResult, ...]]] | None,
    name: str,
) -> str:
    """The derived rule as ``specs/rules/NAME.toml``: its expected verdicts are the
    ones just checked, in the newest era synthesised (per MMU where they differ)."""
    from checker.model import PROPERTIES

    if combined is not None:
        expression = combined[0].rule.expression
        checks = dict(zip((s.label for s in results), combined[1], strict=True))
    else:
        expression = results[0].rule.expression
        checks = {s.label: s.results for s in results}
    newest = results[-1].label.split("/")[0]
    mine = {label: rs for label, rs in checks.items() if label.split("/")[0] == newest}
    first = next(iter(mine.values()))
    expect = {r.prop.name: r.verdict.value for r in first}
    lines = [
        f'name = "{name}"',
        f"expression = {json.dumps(expression)}",
        'summary = """',
        "The weakest safe flush condition, derived from the model by 'checker synth': it",
        "flushes exactly on the update classes whose flush a safety property needs.",
        '"""',
        "",
        "[origin]",
        f'era = "{newest}"',
        f'note = "checker synth over {", ".join(s.label for s in results)}"',
        "",
        "[expect]",
        *(f'{p.name} = "{expect[p.name]}"' for p in PROPERTIES),
    ]
    for label, rs in mine.items():
        differs = {
            r.prop.name: r.verdict.value for r in rs if expect[r.prop.name] != r.verdict.value
        }
        if differs:
            lines += ["", f"[expect.{label.split('/')[1]}]"]
            lines += [f'{k} = "{v}"' for k, v in differs.items()]
    return "\n".join(lines) + "\n"
