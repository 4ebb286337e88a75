"""``checker gate``: the CI gate on rule and model changes (see ``checker.report.gate``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from checker.cli import SIGNAL_EXIT_CODES
from checker.cli.common import (
    PathType,
    cache_option,
    ensure_file_writable,
    hint_store,
    kernel_location,
    one_mmu_options,
    reproduce_command,
    resolve_paths,
    shell_join,
    specs_arguments,
    specs_option,
    write_file,
)
from checker.cli.progress import progress_for, progress_options
from checker.errors import InputError
from checker.rules.specs import DEFAULT_ERA
from checker.schemas import schema_id
from checker.verdict import Verdict, decided

if TYPE_CHECKING:
    from checker.report.gate import GateReport
    from checker.rules.specs import Rule

GATE_EXIT_CODES = (
    """\b
Exit codes:
  0  pass: no failure, the lockfile matches (--update: the lockfile was written)
  1  gate failure: a safety verdict REGRESSED against the lockfile, a verdict
     VIOLATES the rule's [expect], or a verdict is INCONCLUSIVE (a warning
     with --allow-inconclusive); --update refused. Wins over exit 2.
  2  the lockfile is stale (refresh: checker gate --update, or make lock, and
     commit it), or a usage or spec error (one line on stderr, nothing written)
  4  internal error (a one-line message; the traceback with --debug)
"""
    + SIGNAL_EXIT_CODES
    + """\
Exit code 3 is not used by the gate.
"""
)


@click.command(epilog=GATE_EXIT_CODES)
@click.option(
    "--lock",
    "lock_file",
    type=PathType(path_type=Path),
    default=None,
    help="The lockfile.  [default: SPECS/verdicts.lock.json]",
)
@click.option(
    "--update",
    is_flag=True,
    help="Re-check every rule and rewrite the lockfile; refused if the gate fails.",
)
@click.option(
    "--changed-since",
    "since",
    metavar="REV",
    help="Re-check only rules whose files changed in git since REV (all if the model changed).",
)
@click.option(
    "--allow-inconclusive",
    is_flag=True,
    help="An inconclusive verdict is a warning, not a failure.",
)
@click.option(
    "--junit",
    type=PathType(path_type=Path),
    metavar="FILE",
    help="Write JUnit XML: one testcase per (rule, property).",
)
@click.option(
    "--sarif",
    type=PathType(path_type=Path),
    metavar="FILE",
    help="Write SARIF 2.1.0: one result per violation, at the rule's line.",
)
@click.option(
    "--json", "as_json", is_flag=True, help=f"Print JSON on stdout (schema {schema_id('gate')})."
)
@click.option(
    "--rlimit",
    type=click.IntRange(1),
    default=None,
    help="z3 work budget per solver; running out is inconclusive.",
)
@click.option(
    "--kernel",
    type=PathType(path_type=Path),
    help="Gate a kernel tree's own rule (or its spte.h/mmu.c) instead of specs/rules.",
)
@click.option(
    "--expect",
    "expect",
    multiple=True,
    metavar="PROPERTY=VERDICT",
    help="With --kernel: a verdict the rule must keep (default: every property holds).",
)
@cache_option
@one_mmu_options
@specs_option
@progress_options
def gate(
    lock_file: Path | None,
    update: bool,
    since: str | None,
    allow_inconclusive: bool,
    junit: Path | None,
    sarif: Path | None,
    as_json: bool,
    rlimit: int | None,
    kernel: Path | None,
    expect: tuple[str, ...],
    no_cache: bool,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    specs: Path,
    show_progress: bool,
    quiet: bool,
) -> int:
    """Gate every rule in specs/rules on its expected verdicts and on the lockfile.

    Every rule is re-checked (never trusted from a hash) and compared with its
    [expect] table and with the lockfile specs/verdicts.lock.json, which pins per
    rule the hash of its expression, the model's hash, each property's verdict,
    the length and hash of each counterexample and the hash of each certified
    invariant. A safety property the lock records as holding must still hold.

    With --kernel PATH it gates a kernel tree's own rule instead (the pre-commit
    and CI hook for kernel developers): every property must hold unless --expect
    says otherwise, and it is compared with a lockfile only if --lock names one.
    --era NAME (and --harvest-flush, --enable-flush) choose the paths of the
    tree's era, as for 'checker check'; spec rules are gated on the default paths.

    When GITHUB_ACTIONS=true, failures are also written as ::error annotations
    on stderr and a Markdown summary is appended to $GITHUB_STEP_SUMMARY.
    """
    from checker import interrupt, version
    from checker.engines.check import Options
    from checker.engines.smt import Budget, z3_version
    from checker.report import lock as lockfile
    from checker.report.gate import GateSettings
    from checker.report.gate import gate as run_gate
    from checker.rules.specs import is_packaged, load_rules

    if update and since is not None:
        raise InputError("--update re-checks every rule; drop --changed-since")
    if kernel is None and expect:
        raise InputError("--expect goes with --kernel (a spec rule's [expect] table says it)")
    if kernel is not None and since is not None:
        raise InputError("--changed-since gates specs/rules; drop it with --kernel")
    if kernel is not None and update and lock_file is None:
        raise InputError("--update with --kernel needs --lock FILE to write")
    if update and lock_file is None and kernel is None and is_packaged(specs):
        # the lock installed with the checker is the project's, not the user's: a
        # refreshed copy in site-packages would bless verdicts nobody reviews
        raise InputError(
            f"--update would rewrite the lockfile installed with the checker ({specs}); "
            "copy that specs directory and pass --specs DIR, or run it in the project's "
            "checkout"
        )
    progress = progress_for(show_progress, quiet, "gate: ")
    _refuse_paths_without_kernel(kernel, era, mmu, harvest_flush, enable_flush)
    # a kernel tree is gated on its expectations; on a lock only if one is named
    unlocked = kernel is not None and lock_file is None
    lock_path = lock_file if lock_file is not None else lockfile.default_lock_path(specs)
    github = os.environ.get("GITHUB_ACTIONS") == "true"
    summary_path = _summary_path() if github else None
    # every output is checked before any work: a bad path costs nothing
    for option, path in (("--junit", junit), ("--sarif", sarif)):
        if path is not None:
            ensure_file_writable(path, option)
    if update:
        ensure_file_writable(lock_path, "--lock")
    if summary_path is not None:
        ensure_file_writable(summary_path, "$GITHUB_STEP_SUMMARY")

    expectations = None
    if kernel is not None:
        from checker.rules.kernel import rule_from_kernel

        rules = [rule_from_kernel(kernel)]
        expectations = {rules[0].name: _kernel_expectations(expect)}
    else:
        rules = list(load_rules(specs).values())
    # a kernel tree's own era comes from its Makefile, as for 'checker check'
    own = rules[0] if kernel is not None else None
    (choice,) = resolve_paths(specs, era, mmu, harvest_flush, enable_flush, own)
    lock = None if unlocked else _read_lock(lockfile, lock_path, update)
    budget = Budget(rlimit) if rlimit else Budget()
    settings = GateSettings(
        options=Options(paths=choice.paths, budget=budget),
        era=choice.label,
        allow_inconclusive=allow_inconclusive,
        require_lock=not unlocked,
    )
    root = _root(specs)
    changed = _changed_rules(specs, since, rules, lock_path) if since is not None else None

    def reproduce(rule: Rule) -> str:
        command = reproduce_command(rule, settings.options.vcpus, choice)
        extra = specs_arguments(specs)
        return f"{command} {shell_join(extra)}" if extra else command

    report = run_gate(
        rules,
        lock,
        settings,
        expectations=expectations,
        complete=kernel is None,
        changed=changed,
        # no lockfile is read or written: none is named in messages either
        lock_path=None if unlocked else lock_path,
        since=since,
        root=root,
        reproduce=reproduce,
        refresh=_refresh_command(specs, lock_file, kernel),
        progress=progress,
        hints=hint_store(no_cache),
    )
    refusal = report.refusal() if update else None
    # --update succeeds (0) by writing the lock, or is refused (1)
    code = report.exit_code if not update else 1 if refusal is not None else 0

    # the last point where Ctrl-C stops the run with every output untouched
    interrupt.check()
    if junit is not None:
        from checker.report import junit as junit_format

        write_file(junit, junit_format.render(report), "--junit")
    if sarif is not None:
        from checker.report import sarif as sarif_format

        write_file(sarif, sarif_format.render(report), "--sarif")
    if github:
        from checker.report import github as github_format

        for line in github_format.annotation_commands(report):
            click.echo(line, err=True)
        if summary_path is not None:
            _append(summary_path, github_format.step_summary(report))

    written = False
    if update and refusal is None:
        new = report.updated_lock({"checker": version(), "z3": z3_version()})
        if lock is None or lockfile.render(new) != lockfile.render(lock):
            lockfile.write(new, lock_path)
            written = True

    if as_json:
        from checker.report.document import LockUpdate, gate_json, render

        done = LockUpdate(refusal, written) if update else None
        click.echo(render(gate_json(report, done), sort_keys=True))
    else:
        from checker.text import printable

        # rule texts and paths come from the user or files: every line is shown with
        # its control characters escaped, never obeyed by the terminal
        findings = kernel_findings(report) if kernel is not None else []
        lines = human_lines(report, findings)
        if update:
            where = report.display(lock_path)
            if refusal is not None:
                lines.append(report.summary())
                lines.append(f"gate: --update refused, {where} left untouched: {refusal}")
            elif written:
                lines.append(f"gate: wrote {where}; commit it")
            else:
                lines.append(f"gate: {where} is up to date")
        else:
            lines.append(report.summary())
        for line in lines:
            click.echo(printable(line))
    return code


def _refresh_command(specs: Path, lock_file: Path | None, kernel: Path | None) -> str:
    """How the user refreshes this lock: the same ``--kernel``/``--specs``/``--lock``
    as this run; ``make lock`` only for the checkout's own specs, where the Makefile
    is."""
    from checker.rules.specs import checkout_root

    extra = ["--kernel", str(kernel)] if kernel is not None else specs_arguments(specs)
    if lock_file is not None:
        extra += ["--lock", str(lock_file)]
    command = shell_join(["checker", "gate", "--update", *extra])
    # no --specs: the default specs, which are the checkout's when there is one
    if not extra and checkout_root() is not None:
        return f"'{command}' (or 'make lock')"
    return f"'{command}'"


def kernel_findings(report: GateReport) -> list[str]:
    """A kernel tree's gate failures as a compiler reports errors, one per line,
    ``arch/x86/kvm/mmu/spte.h:23: error: precision VIOLATES EXPECTATION: ...``.
    Every gate failure is an error, precision's too: the gate
    fails on it as -Werror fails a build on a warning."""
    return [
        f"{kernel_location(outcome.rule)}: error: {p.prop.name} {p.status.value}: {p.detail}"
        for outcome in report.rules
        if outcome.rule.path is not None
        for p in outcome.properties
        if p.failed
    ]


def _refuse_paths_without_kernel(
    kernel: Path | None,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
) -> None:
    """Spec rules' [expect] tables and the lockfile are stated for the default paths;
    other paths are for a kernel tree's era (--kernel)."""
    if kernel is not None:
        return
    given = [
        option
        for option, value in (
            ("--era", None if era in (None, DEFAULT_ERA) else era),
            ("--mmu", None if mmu == "shadow" else mmu),
            ("--harvest-flush", harvest_flush),
            ("--enable-flush", enable_flush),
        )
        if value is not None
    ]
    if given:
        raise InputError(
            f"{given[0]} goes with --kernel: specs/rules' [expect] tables and the lockfile "
            "are stated for the default paths (use 'checker check --rule NAME "
            f"{given[0]} ...' to see a spec rule on other paths)"
        )


def _kernel_expectations(given: tuple[str, ...]) -> dict[str, Verdict]:
    """Every property holds, except where ``PROPERTY=VERDICT`` says otherwise."""
    from checker.model import PROPERTY_BY_NAME

    expected = dict.fromkeys(PROPERTY_BY_NAME, Verdict.HOLDS)
    for item in given:
        name, _, word = item.partition("=")
        try:
            verdict = decided(word) if name in PROPERTY_BY_NAME else None
        except ValueError:
            verdict = None
        if verdict is None:
            raise InputError(
                f"--expect {item}: expected PROPERTY=holds|violated, PROPERTY one of "
                f"{', '.join(PROPERTY_BY_NAME)}"
            )
        expected[name] = verdict
    return expected


def human_lines(report: GateReport, findings: Sequence[str] = ()) -> list[str]:
    """The verdict table, ``findings`` (a kernel tree's compiler-style lines, before
    the traces they are about), each failure's trace, warnings and the lockfile's
    state."""
    from checker import text
    from checker.traces import view

    where = report.display(report.lock_path) if report.lock_path else "(no lockfile)"
    settings = report.settings
    against = where if report.lock_path else "its expectations (no lockfile)"
    count = len(report.rules)
    head = (
        f"gate: {count} rule{'s' if count != 1 else ''} against {against}; "
        f"model {report.model.sha256[:12]}, paths {settings.era}, "
        f"{settings.options.vcpus} vCPUs"
    )
    if report.since is not None:
        head += f"; re-checking rules changed since {report.since}"
    rows = [["rule", "property", "verdict", "expected", "locked", "status"]]
    for outcome in report.rules:
        for p in outcome.properties:
            locked = p.locked.verdict if p.locked is not None else None
            rows.append(
                [
                    outcome.rule.name,
                    p.prop.name,
                    _word(p.verdict, shout=True),
                    _word(p.expected),
                    _word(locked),
                    p.status.value,
                ]
            )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = [head, ""]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if findings:
        lines += ["", *findings]
    for outcome in report.rules:
        rule = outcome.rule
        for p in outcome.properties:
            if not p.failed:
                continue
            lines += ["", f"{rule.name}: {p.prop.name} {p.status.value}: {p.detail}"]
            at = f" ({report.display(rule.path)}:{rule.line})" if rule.path is not None else ""
            lines.append(f"  rule: {text.one_line(rule.expression)}{at}")
            lines.append(f"  property: {p.prop.statement}")
            if p.result is not None and p.result.trace is not None:
                table = view.step_table(p.result.trace, rule.expression)
                lines += ["    " + line for line in view.table_lines(table)]
            lines.append(f"  reproduce: {outcome.command}")
    warnings = report.warnings
    if warnings:
        lines += ["", "warnings:"]
        lines += [f"  {p.rule.name}: {p.prop.name} {p.status.value}: {p.detail}" for p in warnings]
    if report.stale:
        lines += ["", f"the lockfile {where} is stale:"]
        lines += [f"  - {reason}" for reason in report.stale]
        lines.append(f"  to refresh it, {report.refresh_hint()}")
    lines.append("")
    return lines


def _word(verdict: Verdict | None, shout: bool = False) -> str:
    """A verdict in the table: ``-`` for none; with ``shout``, any but holds in
    capitals, as ``checker check`` prints them."""
    if verdict is None:
        return "-"
    return verdict.value.upper() if shout and verdict is not Verdict.HOLDS else verdict.value


def _summary_path() -> Path | None:
    value = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(value) if value else None


def _append(path: Path, text: str) -> None:
    # the runner owns this file and collects what each step appends to it
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise InputError(
            f"$GITHUB_STEP_SUMMARY {path}: cannot write: {exc.strerror or exc}"
        ) from None


def _root(specs: Path) -> Path:
    """The repository root paths are shown relative to: git's, else the current
    directory."""
    from checker.report.changes import repository_root

    return repository_root(specs) or Path.cwd()


def _changed_rules(specs: Path, since: str, rules: list[Rule], lock_path: Path) -> set[str]:
    """Rules whose files changed since ``since``; every rule if the lockfile, the
    checker's own sources or their pinned versions did."""
    import checker
    from checker.report.changes import changed_files, repository_root, under
    from checker.rules.specs import rules_directory

    root = repository_root(specs)
    everything = [lock_path]
    sources = Path(checker.__file__).resolve().parent
    if root is not None and under(sources, root):
        everything.append(sources)
        everything += [
            p
            for p in (sources.parent / n for n in ("pyproject.toml", "constraints.txt"))
            if p.exists()
        ]
    if root is not None:
        everything = [p for p in everything if under(p, root)]
    files = changed_files(specs, since, [rules_directory(specs), *everything])
    if any(under(f, p) for f in files for p in everything):
        return {rule.name for rule in rules}
    return {rule.name for rule in rules if rule.path is not None and rule.path.resolve() in files}


def _read_lock(lockfile: Any, path: Path, update: bool) -> Any:
    """The lockfile; with --update, one written for another model or format is
    replaced rather than read (what it says is what is being regenerated)."""
    try:
        return lockfile.read(path)
    except InputError:
        if update:
            return None
        raise
