"""SPIN as a referee: the model exported to Promela (``promela.py``), searched by SPIN.

SPIN shares nothing with the other engines but the declaration the Promela text is
derived from: its own parser, state store and search. :func:`run` writes the
model, runs ``spin -a``, compiles ``pan.c`` and lets ``pan`` search every
reachable state:

    cc -O2 -DSAFETY -DNOREDUCE -DMEMLIM=<MB> -o pan pan.c
    ./pan -c0 -e -n -m<depth> -w<hash bits>

``-DSAFETY``: assertions only, no cycle detection (the properties are safety
properties); ``-DNOREDUCE``: no partial-order reduction, so that every reachable
state is stored (the model has one process, where it would reduce nothing anyway,
but then the count is the full state space by construction); ``-c0``: the search
does not stop at an error, so the count is the whole reachable set even when a
property is violated; ``-e``: a trail for every error (the Promela text makes each
property fail once at most); ``-n``: no report of unreached code. ``-m`` (the depth
of the depth-first stack) grows tenfold while ``pan`` reports it too small;
``-DMEMLIM`` bounds its memory, beyond which the search is incomplete (an
inconclusive answer, never "holds").

SPIN then stores exactly the model's reachable states, the explicit engine's count
without symmetry reduction (``explicit.explore(system, n, symmetric=False)``).

Each trail is replayed by ``spin -t -T`` on the same text with every other
property's assertion muted (the replay would stop at the first assertion that
fails on the way; the muted text differs only in initial values of scratch
variables, so the trail fits it); the labels its steps print are the actions,
replayed in turn through the step function (``certify.replay``): a trail that does
not replay is an internal error. Depth-first trails are long (hundreds of steps);
:func:`shortest` finds a shortest one with ``pan`` compiled for breadth-first
search (``-DBFS``), which takes the actions in their canonical order and so finds
the traces the other engines report.

Runs are memoised in the process by their Promela text and options. Nothing here
prints. A missing ``spin`` or C compiler is :class:`SpinUnavailable` (exit 2).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from checker import interrupt
from checker.engines import promela, semantics
from checker.engines.bmc import SmtTrace
from checker.engines.certify import replay
from checker.engines.semantics import Action, State
from checker.engines.trace import Trace
from checker.errors import InputError, InternalError
from checker.model import PROPERTIES, Property, System
from checker.verdict import Verdict

#: how to install what the referee needs (Debian's packages)
INSTALL = "apt-get install spin gcc"
#: pan's memory bound (-DMEMLIM), in MB
DEFAULT_MEMORY_MB = 8192
#: pan is compiled with -O2 from this many vCPUs on, else -O0: -O2 takes 2 to 4 s
#: to compile (-O0 under 1 s) and halves the search, which takes under half a
#: second up to 6 vCPUs (42 thousand states) and 2 to 5 s at 8 (327 thousand)
OPTIMIZE_FROM = 8
#: the deepest depth-first stack tried (-m, 48 bytes a step, allocated up front)
LAST_DEPTH = 100_000_000


def first_depth(vcpus: int) -> int:
    """The depth-first stack's first depth (-m), grown tenfold while too small: the
    search goes a third to a ninth of the states deep (362 of 1,016 at 2 vCPUs, 47,555
    of 326,852 at 8, 372,936 of 2,750,756 at 10, 2,662,924 of 23,993,732 at 12)."""
    return int(10 ** min(8, max(5, vcpus // 3 + 3)))


class SpinUnavailable(InputError):
    """``spin`` or ``cc`` is not installed."""


@dataclass(frozen=True)
class Violation:
    """A property's trail, read back and replayed through the step function."""

    prop: str
    #: the number of the trail file (``model.pml<k>.trail``)
    trail: int
    trace: Trace


@dataclass(frozen=True)
class SpinRun:
    """What ``pan`` reported for one model."""

    vcpus: int
    #: every reachable state was stored (no memory or depth bound hit)
    complete: bool
    #: states stored, transitions taken, the depth-first search's deepest point
    states: int
    transitions: int
    depth: int
    #: pan's "total actual memory usage" (states, hash table, the depth-first
    #: stack it allocates), in MB: within a few percent of its peak resident memory
    memory_mb: float
    #: spin -a and cc; pan
    compile_seconds: float
    search_seconds: float
    #: the properties asserted, and the violated ones with their trails
    checked: tuple[str, ...]
    violations: dict[str, Violation] = field(default_factory=dict)
    #: why the search is incomplete
    problem: str = ""

    def violated(self, prop: str) -> bool:
        return prop in self.violations


@dataclass(frozen=True)
class Decision:
    """A property's verdict by SPIN at the vCPUs asked for, and for a violation the
    shortest trace with the fewest vCPUs."""

    verdict: Verdict
    states: int
    trace: Trace | None = None
    reason: str = ""


def tools() -> tuple[str, str]:
    """The paths of ``spin`` and ``cc``; :class:`SpinUnavailable` if one is missing."""
    spin, cc = shutil.which("spin"), shutil.which("cc")
    missing = [name for name, path in (("spin", spin), ("cc", cc)) if path is None]
    if spin is None or cc is None:
        raise SpinUnavailable(
            f"the SPIN referee needs {' and '.join(missing)}, which is not installed; "
            f"install it ({INSTALL})"
        )
    return spin, cc


def version() -> str:
    """``Spin Version 6.5.2 -- 6 December 2019``."""
    spin, _ = tools()
    done = subprocess.run([spin, "-V"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


_RUNS: dict[str, SpinRun] = {}


def run(
    system: System,
    vcpus: int,
    props: Sequence[Property] = PROPERTIES,
    optimize: bool | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> SpinRun:
    """SPIN's exhaustive search of ``system`` at ``vcpus`` vCPUs, asserting
    ``props``; every trail replayed through the step function. ``optimize``:
    compile ``pan`` with ``-O2``, else ``-O0``; by default from
    :data:`OPTIMIZE_FROM` vCPUs on."""
    tools()  # missing tools are missing, even with the answer in memory
    exported = promela.export(system, vcpus, _header(system), props)
    flags = _compile_flags(exported, _optimized(optimize, vcpus), memory_mb)
    key = hashlib.sha256("\0".join([exported.text, *flags]).encode()).hexdigest()
    if key not in _RUNS:
        _RUNS[key] = _run(system, exported, props, flags)
    return _RUNS[key]


def _header(system: System) -> promela.Header:
    """The rule's name and C text, when it has them (a spec's rule does)."""
    rule = system.rule
    expression = getattr(rule, "expression", None)
    if not isinstance(expression, str):
        expression = promela.rule_expression(system).text
    return promela.Header(_rule_name(system), expression)


def _rule_name(system: System) -> str:
    name = getattr(system.rule, "name", None)
    return name if isinstance(name, str) else "rule"


def _optimized(optimize: bool | None, vcpus: int) -> bool:
    return vcpus >= OPTIMIZE_FROM if optimize is None else optimize


def _compile_flags(exported: promela.Export, optimize: bool, memory_mb: int) -> list[str]:
    flags = ["-O2" if optimize else "-O0", "-DSAFETY", "-DNOREDUCE", f"-DMEMLIM={memory_mb}"]
    # a byte per bool, and some for pan's own: the default vector of 1024 bytes
    # holds about 490 vCPUs of the shipped model; beyond, it is made larger
    size = exported.variables + 64
    if size > 1024:
        flags.append(f"-DVECTORSZ={size}")
    return flags


def _run(
    system: System, exported: promela.Export, props: Sequence[Property], flags: list[str]
) -> SpinRun:
    spin, cc = tools()
    with tempfile.TemporaryDirectory(prefix="checker-spin-") as name:
        work = Path(name)
        model = work / "model.pml"
        model.write_text(exported.text, encoding="utf-8")
        started = time.perf_counter()
        _tool([spin, "-a", model.name], work, "spin -a")
        _tool([cc, *flags, "-o", "pan", "pan.c"], work, "cc")
        compiled = time.perf_counter()
        depth = first_depth(exported.vcpus)
        while True:
            for old in work.glob("*.trail"):
                old.unlink()
            search = ["-c0", "-e", "-n", f"-m{depth}", f"-w{_hash_bits(exported.vcpus)}"]
            searching = _pan(search, work)
            output = searching.stdout
            if "max search depth too small" not in output or depth >= LAST_DEPTH:
                break
            depth *= 10
        searched = time.perf_counter()
        report = _report(output, exported.vcpus)
        violations = {}
        by_variable = {v: k for k, v in exported.assertions.items()}
        for variable, trail in _errors(output):
            prop = by_variable.get(variable)
            if prop is None:
                raise InternalError(f"SPIN: an assertion on {variable} failed, which names none")
            if prop in violations:
                raise InternalError(f"SPIN: {prop} failed its assertion twice")
            found = _replay_trail(system, exported, props, prop, work, model, trail)
            violations[prop] = Violation(prop, trail, found)
    return SpinRun(
        vcpus=exported.vcpus,
        complete=report.problem == "",
        states=report.states,
        transitions=report.transitions,
        depth=report.depth,
        memory_mb=report.memory_mb,
        compile_seconds=compiled - started,
        search_seconds=searched - compiled,
        checked=tuple(p.name for p in props),
        violations=violations,
        problem=report.problem,
    )


def _hash_bits(vcpus: int) -> int:
    """pan's hash table (-w): 2**w slots of 8 bytes, about one per state (log2 of
    the model's states grows by about 1.5 a vCPU: 18 at 8 vCPUs, 21 at 10;
    collisions are chained, never lost, so this is only speed)."""
    return min(27, max(18, round(8 + 1.5 * vcpus)))


def _tool(argv: list[str], cwd: Path, what: str) -> str:
    """Run one step; its output, or an internal error with its last lines."""
    done = _call(argv, cwd, what)
    if done.returncode != 0:
        raise InternalError(f"SPIN: {what} exited {done.returncode}: {done.tail}")
    return done.stdout


def _pan(options: list[str], cwd: Path) -> _Done:
    """Run the compiled ``pan``: its report, also when it stopped at its memory
    bound (then it says so, and the search is incomplete)."""
    done = _call(["./pan", *options], cwd, "pan")
    if done.returncode != 0 and not _out_of_memory(done.stdout):
        raise InternalError(f"SPIN: pan exited {done.returncode}: {done.tail}")
    return done


def _out_of_memory(output: str) -> bool:
    return "MEMLIM" in output or "out of memory" in output


@dataclass(frozen=True)
class _Done:
    returncode: int
    stdout: str
    stderr: str

    @property
    def tail(self) -> str:
        return " ".join((self.stderr or self.stdout).strip().splitlines()[-3:])


def _call(argv: list[str], cwd: Path, what: str) -> _Done:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise SpinUnavailable(f"{what}: cannot run {argv[0]}: {exc}; install {INSTALL}") from None
    # Ctrl-C reaches the tool too, which then fails: that is no error of its own
    interrupt.check()
    return _Done(done.returncode, done.stdout, done.stderr)


_NUMBER = r"[\d.]+(?:e[+-]\d+)?"


@dataclass(frozen=True)
class _Report:
    states: int
    transitions: int
    depth: int
    memory_mb: float
    problem: str


def _report(output: str, vcpus: int) -> _Report:
    def number(pattern: str) -> float:
        # pan prints large counts as %9.8g: exact up to 10**8
        m = re.search(pattern, output, re.MULTILINE)
        if m is None:
            raise InternalError(f"SPIN: pan's report has no {pattern!r}")
        return float(m.group(1))

    problem = ""
    if "max search depth too small" in output:
        problem = f"pan's depth-first stack ran out at {LAST_DEPTH:,} steps"
    elif _out_of_memory(output):
        problem = f"pan ran out of memory at {vcpus} vCPUs (-DMEMLIM)"
    elif "Full statespace search" not in output:
        problem = "pan did not search the full state space"
    return _Report(
        states=int(number(rf"^\s*({_NUMBER}) states, stored")),
        transitions=int(number(rf"^\s*({_NUMBER}) transitions")),
        depth=int(number(rf"depth reached ({_NUMBER})")),
        memory_mb=number(rf"^\s*({_NUMBER})\s+total actual memory usage"),
        problem=problem,
    )


_ANY_ERROR = re.compile(r"^pan:\d+: (.*)$", re.MULTILINE)
_ERROR = re.compile(r"^pan:\d+: assertion violated\s+!\((\w+)\)", re.MULTILINE)
_WROTE = re.compile(r"^pan: wrote \S+?(\d+)\.trail$", re.MULTILINE)


def _errors(output: str) -> list[tuple[str, int]]:
    """Each failed assertion's variable and its trail's number, in order."""
    every = _ANY_ERROR.findall(output)
    errors = _ERROR.findall(output)
    if len(every) != len(errors):
        other = next(e for e in every if not e.startswith("assertion violated"))
        raise InternalError(f"SPIN: pan reports an error that is no property's: {other}")
    trails = [int(k) for k in _WROTE.findall(output)]
    if len(errors) != len(trails):
        raise InternalError(f"SPIN: {len(errors)} assertion failures, {len(trails)} trails")
    return list(zip(errors, trails, strict=True))


def _replay_trail(
    system: System,
    exported: promela.Export,
    props: Sequence[Property],
    prop: str,
    work: Path,
    model: Path,
    trail: int,
) -> Trace:
    """Trail ``trail`` of ``model``, replayed by SPIN on the text with every other
    property muted, read back as actions and replayed through the step function."""
    spin, _ = tools()
    others = [p.name for p in props if p.name != prop]
    muted = promela.export(system, exported.vcpus, _header(system), props, muted=others)
    replayed = work / f"replay-{trail}.pml"
    replayed.write_text(muted.text, encoding="utf-8")
    (work / f"{replayed.name}.trail").write_bytes(
        (work / f"{model.name}{trail}.trail").read_bytes()
    )
    output = _tool([spin, "-t", "-T", replayed.name], work, "spin -t")
    return _trace(system, exported, prop, output)


def _trace(system: System, exported: promela.Export, prop: str, output: str) -> Trace:
    """The trace a replay's output shows: its labels, as actions from the initial
    state (the one ``@initial <index>`` names, anything before being a cycle
    back to the start), replayed through the step function."""
    variable = exported.assertions[prop]
    if f"assert(!({variable}))" not in output:
        raise InternalError(f"SPIN: the replay of {prop}'s trail does not fail its assertion")
    start = 0
    actions: list[Action] = []
    for line in output.splitlines():
        if line.startswith(promela.INITIAL_LABEL + " "):
            start, actions = int(line.split()[1]), []
        elif line.startswith(promela.ACTION_LABEL + " "):
            actions.append(exported.actions[int(line.split()[1])])
    return _replayed(system, prop, exported.vcpus, start, actions)


def _replayed(system: System, prop: str, vcpus: int, start: int, actions: list[Action]) -> Trace:
    initial = semantics.initial_states(vcpus, system.shape, system.model)[start]
    states: list[State] = [initial]
    for action in actions:
        step = semantics.step(system, states[-1], action)
        if step is None:
            raise InternalError(f"SPIN: {prop}'s trail takes {action.label}, which is not enabled")
        states.append(step.after)
    by_name = {p.name: p for p in system.model.properties}
    return replay(
        system, _rule_name(system), by_name[prop], SmtTrace(tuple(actions), tuple(states))
    )


# --- a shortest trail ------------------------------------------------------------------


def shortest(
    system: System, vcpus: int, prop: Property, optimize: bool | None = None
) -> Trace | None:
    """A shortest trace violating ``prop`` at ``vcpus`` vCPUs, by SPIN's
    breadth-first search of the model asserting ``prop`` alone (its first error is
    at the least depth); None if there is none."""
    exported = promela.export(system, vcpus, _header(system), [prop], shortest=True)
    flags = [*_compile_flags(exported, _optimized(optimize, vcpus), DEFAULT_MEMORY_MB), "-DBFS"]
    key = hashlib.sha256("\0".join([exported.text, *flags]).encode()).hexdigest()
    if key not in _SHORTEST:
        _SHORTEST[key] = _shortest(system, exported, prop, flags)
    return _SHORTEST[key]


_SHORTEST: dict[str, Trace | None] = {}


def _shortest(
    system: System, exported: promela.Export, prop: Property, flags: list[str]
) -> Trace | None:
    spin, cc = tools()
    with tempfile.TemporaryDirectory(prefix="checker-spin-") as name:
        work = Path(name)
        model = work / "model.pml"
        model.write_text(exported.text, encoding="utf-8")
        _tool([spin, "-a", model.name], work, "spin -a")
        _tool([cc, *flags, "-o", "pan", "pan.c"], work, "cc")
        output = _pan(["-n", f"-w{_hash_bits(exported.vcpus)}"], work).stdout
        report = _report(output, exported.vcpus)
        if not _ERROR.search(output):
            if report.problem:
                raise InternalError(
                    f"SPIN: the breadth-first search is incomplete: {report.problem}"
                )
            return None
        replayed = _tool([spin, "-t", "-T", model.name], work, "spin -t")
        return _trace(system, exported, prop.name, replayed)


# --- a verdict --------------------------------------------------------------------------


def decide(system: System, prop: Property, vcpus: int) -> Decision:
    """``prop``'s verdict by SPIN at ``vcpus`` vCPUs, and for a violation a shortest
    trace with the fewest vCPUs that show it (a violation with k vCPUs is one with
    any more: the others stay idle)."""
    found = run(system, vcpus)
    stored = f"{found.states:,} states stored by SPIN at {vcpus} vCPUs"
    if not found.violated(prop.name):
        if not found.complete:
            # a violation found is one (it replays); no violation found is no proof
            return Decision(Verdict.INCONCLUSIVE, found.states, reason=found.problem)
        return Decision(Verdict.HOLDS, found.states, reason=stored)
    fewest = next(k for k in range(1, vcpus + 1) if run(system, k).violated(prop.name))
    trace = shortest(system, fewest, prop)
    if trace is None:
        raise InternalError(
            f"SPIN: {prop.name} is violated, but its breadth-first search finds no trail"
        )
    return Decision(Verdict.VIOLATED, found.states, trace, reason=stored)
