"""Options and helpers shared by several commands."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from checker.errors import InputError
from checker.limits import MAX_DEPTH as MAX_DEPTH
from checker.limits import MAX_VCPUS as MAX_VCPUS
from checker.rules.specs import DEFAULT_ERA

if TYPE_CHECKING:
    from checker.engines.hints import HintStore
    from checker.model import Paths, Shape
    from checker.rules.scenarios import Scenario
    from checker.rules.specs import Rule
    from checker.traces.graph import TraceGraph

F = TypeVar("F", bound=Callable[..., Any])

HARVEST_FLUSH = ("reaped", "changed", "always", "never", "locked")
ENABLE_FLUSH = ("always", "changed", "mmu_writable", "present", "rule", "never", "locked")
MMUS = ("shadow", "tdp", "both")


class PathType(click.Path):
    """``click.Path`` that refuses an empty name: ``Path("")`` is ``.``, so ``--out ''``
    would silently mean the current directory."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str | bytes) and not value:
            self.fail("an empty path; pass a file or folder name", param, ctx)
        return super().convert(value, param, ctx)


def specs_option(f: F) -> F:
    """--specs DIR, defaulting to :func:`checker.rules.specs.default_specs`: the checkout's
    ``specs/`` when run from one, else the copy installed with the package."""
    return click.option(
        "--specs",
        type=PathType(path_type=Path),
        default=None,
        callback=_default_specs,
        show_default="the checkout's specs/, else the installed copy",
        help="The specs directory (rules/ and eras/).",
    )(f)


def _default_specs(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    from checker.rules.specs import default_specs

    return value if value is not None else default_specs()


def specs_arguments(specs: Path) -> list[str]:
    """``--specs DIR`` when ``specs`` is not the default one, so that a printed
    command finds the same rules again; nothing otherwise."""
    from checker.rules.specs import default_specs

    return [] if specs == default_specs() else ["--specs", str(specs)]


#: the same as checker.engines.explicit.DEFAULT_MAX_STATES (not imported: --help stays light)
DEFAULT_MAX_STATES = 400_000


def vcpus_option(f: F) -> F:
    """--vcpus N: how many vCPUs the model has (2 by default)."""
    return click.option(
        "--vcpus",
        type=click.IntRange(1, MAX_VCPUS),
        default=2,
        show_default=True,
        help="Number of vCPUs.",
    )(f)


def one_rule_options(f: F) -> F:
    """--rule, --expr, --kernel: the one rule a command looks at."""
    f = click.option("--kernel", type=PathType(path_type=Path), help="The rule of a kernel tree.")(
        f
    )
    f = click.option("--expr", metavar="C", help="An ad-hoc flush condition in C.")(f)
    return click.option("--rule", "rule_name", metavar="NAME", help="A rule from specs/rules.")(f)


def max_states_option(f: F) -> F:
    """--max-states: the explicit exploration's budget."""
    return click.option(
        "--max-states",
        type=click.IntRange(1),
        default=DEFAULT_MAX_STATES,
        show_default=True,
        help="The explicit exploration's budget, in states times vCPUs (a state of 8 vCPUs "
        "counts 8); beyond, it stops as inconclusive (exit 3).",
    )(f)


def cache_option(f: F) -> F:
    """--no-cache: neither use nor keep hints from earlier runs."""
    return click.option(
        "--no-cache",
        is_flag=True,
        help="Neither use nor keep what earlier runs found (Spacer's invariants, kept "
        "as hints that are certified again before use; also CHECKER_CACHE=0).",
    )(f)


def hint_store(no_cache: bool) -> HintStore | None:
    """Where hints are kept, from the environment; None with --no-cache."""
    if no_cache:
        return None
    from checker.engines.hints import store_from_environment

    return store_from_environment()


def paths_options(f: F) -> F:
    """--era, --mmu, --harvest-flush, --enable-flush: the kernel around the rule."""
    return _paths_options(f, single=False)


def one_mmu_options(f: F) -> F:
    """As :func:`paths_options`, for a command that looks at one MMU at a time."""
    return _paths_options(f, single=True)


def _paths_options(f: F, single: bool) -> F:
    f = click.option(
        "--enable-flush",
        type=click.Choice(ENABLE_FLUSH),
        help="Override the era: when enabling dirty logging flushes.",
    )(f)
    f = click.option(
        "--harvest-flush",
        type=click.Choice(HARVEST_FLUSH),
        help="Override the era: when a dirty-log harvest flushes.",
    )(f)
    f = click.option(
        "--mmu",
        type=click.Choice(MMUS[:2] if single else MMUS),
        default="shadow" if single else "both",
        show_default=True,
        help="Which MMU: the shadow MMU or the TDP MMU"
        + ("." if single else ", or each the era has."),
    )(f)
    return click.option(
        "--era",
        metavar="NAME",
        default=None,
        show_default="the rule's own era, else " + DEFAULT_ERA,
        help="The kernel era around the rule, from specs/eras (see 'checker rules').",
    )(f)


def out_option(what: str) -> Callable[[F], F]:
    """--out DIR, where a command writes its files: ``what`` says which."""
    return click.option(
        "--out",
        type=PathType(path_type=Path),
        default=None,
        show_default="counterexamples/ inside the checker's checkout; elsewhere nothing is written",
        help=what,
    )


def write_trace(g: TraceGraph, directory: Path, stem: str, out: Path) -> tuple[str, ...]:
    """Write a counterexample's files (``g``) as ``directory/stem.*``; a file that
    cannot be written is an input error naming ``--out`` (``out``). The files."""
    from checker.traces import graph

    try:
        paths = graph.write_counterexample(g, directory, stem)
    except OSError as exc:
        raise InputError(
            f"--out {out}: cannot write counterexample: {exc.strerror or exc}"
        ) from None
    return tuple(str(p) for p in paths)


def scenario_options(f: F) -> F:
    """--scenario, --fix: a model sized for one question, and one of its fixes."""
    f = click.option(
        "--fix",
        metavar="NAME",
        default=None,
        help="With --scenario: one of the scenario's fixes, in place of the era's code "
        "(see 'checker scenario NAME').",
    )(f)
    return click.option(
        "--scenario",
        metavar="NAME",
        default=None,
        help="Check the model of a scenario from specs/scenarios (its shape and "
        "operations) instead of the one-gfn model.",
    )(f)


@dataclass(frozen=True)
class PathsChoice:
    """One MMU of one era, chosen on the command line, with any overrides; the
    scenario whose model is checked, and its fix, if any."""

    era: str
    paths: Paths
    overrides: tuple[tuple[str, str], ...] = ()
    scenario: Scenario | None = None
    fix: str | None = None

    @property
    def mmu(self) -> str:
        return self.paths.mmu.value

    @property
    def shape(self) -> Shape:
        from checker.model import Shape

        return self.scenario.shape if self.scenario is not None else Shape()

    @property
    def label(self) -> str:
        """``v6.13/tdp``, ``v6.13/shadow+harvest_flush=changed``,
        ``v6.13/shadow+fix=flush-under-lock``."""
        overrides = self.overrides + ((("fix", self.fix),) if self.fix else ())
        return f"{self.era}/{self.mmu}" + "".join(f"+{k}={v}" for k, v in overrides)

    @property
    def arguments(self) -> list[str]:
        """The command-line arguments that choose these paths again."""
        args = ["--era", self.era, "--mmu", self.mmu]
        for key, value in self.overrides:
            args += [f"--{key.replace('_', '-')}", value]
        if self.scenario is not None:
            args += ["--scenario", self.scenario.name]
        if self.fix is not None:
            args += ["--fix", self.fix]
        return args


def resolve_paths(
    specs: Path,
    era: str | None,
    mmu: str,
    harvest_flush: str | None,
    enable_flush: str | None,
    rule: Rule | None = None,
    scenario: str | None = None,
    fix: str | None = None,
) -> list[PathsChoice]:
    """The MMUs of the era chosen (``era``; else the rule's own era; else the
    newest), each with the overrides applied; with ``scenario``, its model, and
    ``fix`` in place of the era's code."""
    import dataclasses

    from checker.model import EnableFlush, HarvestFlush
    from checker.model.paths import Mmu
    from checker.rules.specs import era_of_release, load_eras, load_named_era

    chosen_scenario = _scenario(specs, scenario, fix)
    name = era or (rule.origin.get("era") if rule is not None else None)
    release = rule.origin.get("release") if rule is not None else None
    if name is None and release is not None:
        # a kernel tree's own era, from its top Makefile
        major, minor = (int(x) for x in release.split("."))
        found = era_of_release(load_eras(specs), (major, minor))
        if found is None:
            raise InputError(
                f"the tree is Linux {release}, which no era in {specs}/eras covers; "
                "pass --era NAME (see 'checker rules')"
            )
        name = found.name
    name = name or DEFAULT_ERA
    # only the era asked for is read; all of them only to say which there are
    chosen = load_named_era(specs, name)
    if chosen is None:
        eras = load_eras(specs)
        raise InputError(
            f"unknown era '{name}' (known: {', '.join(eras)}); {_how_to_add(specs, 'eras', name)}"
        )
    mmus = chosen.mmus if mmu == "both" else (Mmu(mmu),)
    if not set(mmus) <= set(chosen.mmus):
        raise InputError(
            f"era '{name}' has no {mmu} MMU (it has: "
            f"{', '.join(m.value for m in chosen.mmus)}); pass --mmu both or another era"
        )
    choices = []
    for m in mmus:
        paths = chosen.paths[m]
        overrides: list[tuple[str, str]] = []
        if harvest_flush is not None and harvest_flush != paths.harvest_flush.value:
            paths = dataclasses.replace(paths, harvest_flush=HarvestFlush(harvest_flush))
            overrides.append(("harvest_flush", harvest_flush))
        if enable_flush is not None and enable_flush != paths.enable_flush.value:
            paths = dataclasses.replace(paths, enable_flush=EnableFlush(enable_flush))
            overrides.append(("enable_flush", enable_flush))
        if chosen_scenario is not None:
            if not chosen_scenario.applies(paths):
                raise InputError(
                    f"scenario '{chosen_scenario.name}' needs {chosen_scenario.requirement}, "
                    f"which era '{name}' ({m.value} MMU) lacks; pass a later --era"
                )
            if fix is not None:
                paths = chosen_scenario.fixes[fix].apply(paths)
        choices.append(PathsChoice(name, paths, tuple(overrides), chosen_scenario, fix))
    return choices


def _scenario(specs: Path, name: str | None, fix: str | None) -> Scenario | None:
    """The scenario named by --scenario (None without it), with --fix checked."""
    if name is None:
        if fix is not None:
            raise InputError("--fix needs --scenario NAME: fixes belong to a scenario")
        return None
    from checker.rules.scenarios import load_scenarios

    scenarios = load_scenarios(specs)
    if name not in scenarios:
        known = ", ".join(scenarios) or "none"
        raise InputError(
            f"unknown scenario '{name}' (known: {known}); {_how_to_add(specs, 'scenarios', name)}"
        )
    found = scenarios[name]
    if fix is not None and fix not in found.fixes:
        raise InputError(
            f"scenario '{name}' has no fix '{fix}' (its fixes: {', '.join(found.fixes)})"
        )
    return found


def select_rules(
    rule_name: str | None,
    expr: str | None,
    all_rules: bool,
    specs: Path,
    kernel: Path | None = None,
    memo: Path | None = None,
) -> list[Rule]:
    """The rules named by --rule / --expr / --kernel / --all (exactly one of them);
    a spec's expression parsed through the memo in ``memo`` (the hints' folder; see
    :mod:`checker.rules.memo`), if given."""
    from checker.rules.specs import adhoc_rule, load_named_rule, load_rules

    chosen = [
        x for x in (rule_name is not None, expr is not None, kernel is not None, all_rules) if x
    ]
    if len(chosen) != 1:
        raise InputError("give exactly one of --rule NAME, --expr C, --kernel PATH or --all")
    if expr is not None:
        return [adhoc_rule(expr)]
    if kernel is not None:
        from checker.rules.kernel import rule_from_kernel

        return [rule_from_kernel(kernel)]
    if all_rules:
        return list(load_rules(specs, memo).values())
    assert rule_name is not None
    # only the rule asked for is read (and parsed); all of them only to say which
    # there are
    found = load_named_rule(specs, rule_name, memo)
    return [found if found is not None else named_rule(rule_name, load_rules(specs), specs)]


def named_rule(name: str, known: dict[str, Rule], specs: Path) -> Rule:
    if name not in known:
        raise InputError(
            f"unknown rule '{name}' (known: {', '.join(sorted(known))}); "
            f"{_how_to_add(specs, 'rules', name)} or use --expr"
        )
    return known[name]


def _how_to_add(specs: Path, kind: str, name: str) -> str:
    """How to add a rule or era: to the specs directory in use, unless that is
    the copy installed with the package (edits there vanish on reinstall)."""
    from checker.rules.specs import is_packaged

    if is_packaged(specs):
        return f"write DIR/{kind}/{name}.toml (a copy of the specs) and pass --specs DIR"
    return f"add {specs}/{kind}/{name}.toml"


def ensure_writable(out: Path, option: str = "--out") -> None:
    """Fail before any work if files could not be written under the directory ``out``."""
    if not _creatable(out):
        raise InputError(f"{option} {out}: cannot write there; pass a writable path")


def ensure_file_writable(path: Path, option: str) -> None:
    """Fail before any work if the file ``path`` could not be written: a device or
    FIFO (written into) must be writable itself, a file (a symlink's target) must
    be creatable in its folder (written beside it, then renamed)."""
    import stat

    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; pass a file name")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if not os.access(path, os.W_OK):
            raise InputError(f"{option} {path}: cannot write there; pass a writable path")
        return
    if mode is None and os.path.islink(path):
        from checker.files import dangling_target

        dangling_target(path, option)
    if not _creatable(Path(os.path.realpath(path)).parent):
        raise InputError(f"{option} {path}: cannot write there; pass a writable path")


def _creatable(directory: Path) -> bool:
    """``directory`` exists and is writable, or could be created: the nearest existing
    directory above it is writable."""
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def write_file(path: Path, text: str, option: str) -> None:
    """Write ``text`` to ``path`` with :func:`checker.files.write_text`: atomically
    to a regular file (a symlink's target), into a device or FIFO, never replacing
    one; a failure is a one-line input error naming ``option``."""
    from checker.files import write_text

    write_text(path, text, option)


def rule_arguments(rule: Rule) -> list[str]:
    """The command-line arguments that name ``rule`` again."""
    return list(rule.selector)


def reproduce_command(rule: Rule, vcpus: int, choice: PathsChoice) -> str:
    """The command that checks ``rule`` again and finds the same trace, as one line
    without control characters (a trace's metadata holds it, and a terminal shows
    it): see :func:`shell_quote`."""
    args = ["checker", "check", *rule_arguments(rule), "--vcpus", str(vcpus), *choice.arguments]
    return shell_join(args)


def shell_join(args: list[str]) -> str:
    """:func:`shlex.join`, each argument quoted by :func:`shell_quote`."""
    return " ".join(shell_quote(arg) for arg in args)


def shell_quote(arg: str) -> str:
    """``arg`` quoted for bash: as :func:`shlex.quote` does, unless it holds a
    control character (an ``--expr`` over several lines, a tree path with a newline),
    then in ANSI-C quoting, ``$'a &&\\nb'``, which bash (and zsh, ksh) turns back
    into the same string, and which itself holds no control character."""
    from checker.text import control_character

    if control_character(arg) is None:
        return shlex.quote(arg)
    return "$'" + "".join(_ansi_c(c) for c in arg) + "'"


_ANSI_C_NAMED = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _ansi_c(c: str) -> str:
    from checker.text import control_character

    if c in _ANSI_C_NAMED:
        return _ANSI_C_NAMED[c]
    if control_character(c) is None:
        return c
    # a fixed number of digits: the next character is never read as one more
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


#: where ``check`` writes traces when run inside the checkout without --out
COUNTEREXAMPLES = "counterexamples"


def default_trace_directory() -> Path | None:
    """Where traces go without ``--out``: the project's ``counterexamples/`` when the
    checker runs from its checkout and the current directory is inside it; None
    anywhere else (an installed checker in a kernel tree, which is someone else's
    and gets nothing written into it unless ``--out`` asks)."""
    from checker.rules.specs import checkout_root

    root = checkout_root()
    if root is None:
        return None
    try:
        here = Path.cwd().resolve()
    except OSError:
        return None
    if here == root:
        return Path(COUNTEREXAMPLES)
    return root / COUNTEREXAMPLES if here.is_relative_to(root) else None


def trace_directory_name(rule: Rule) -> str:
    """The folder of ``rule``'s traces under --out: a spec rule's name; for an
    ad-hoc rule (``--expr``, ``--kernel``) that name and a short hash of its
    normalised formula (``expr-1a2b3c4d``), so that two different rules never
    overwrite each other's traces and the same rule, however written, finds its own."""
    import hashlib

    from checker.rules import formula

    if rule.selector[0] == "--rule":
        return rule.name
    digest = hashlib.sha256(formula.render(rule.formula).encode("utf-8")).hexdigest()
    return f"{rule.name}-{digest[:8]}"


def kernel_location(rule: Rule) -> str:
    """``FILE:LINE`` of a kernel rule's expression (as ``checker extract`` finds
    it), so that editors and CI logs link to it from where the checker ran: the file
    relative to the current directory when it lies under it (``arch/x86/kvm/...`` in
    the tree's root, as kbuild prints it), else as the tree was given
    (``~/linux/arch/...``), as a compiler prints the paths on its command line."""
    assert rule.path is not None
    try:
        here = os.path.relpath(rule.path)
    except ValueError:  # another drive: there is no relative path
        here = str(rule.path)
    shown = str(rule.path) if here == ".." or here.startswith("../") else here
    return f"{Path(shown).as_posix()}:{rule.line}"
