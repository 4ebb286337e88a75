"""`make bench`: timings of the checker, as figures (no pass/fail).

1. End to end: the median wall time of fresh `python -m checker` processes, so it
   includes interpreter start-up and imports; the floor is a bare
   `python -c "import z3"` run measured in the same session, fifteen times, each run
   followed by one of the goal's `check --rule new --vcpus 2`, and every figure is
   also given as a ratio to it. Among them: one rule in one era (both MMUs, every
   property, proofs for every vCPU count), the whole history suite, the 2M SPTE
   scenario (one era, then every era and fix), and `checker synth` of one era, both
   MMUs, without and with kept hints.
2. Engines, in one process, rule `new` (every property holds, so every engine does
   its whole job), per vCPU count: the explicit engine's states (concrete and up
   to vCPU symmetry) and time; the SMT proof of every property at that count;
   and the certification of the same invariants for every number of vCPUs.
3. The SPIN referee beside the SMT engine, rule `new`, per vCPU count: SPIN's
   exhaustive search of the exported Promela model (spin -a and cc -O2, then pan),
   its states stored, time and memory, and `checker check --rule new` end to end
   with its peak memory; a count whose search would take more than a minute,
   extrapolated from the two before it, is skipped and the estimate printed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHECKER = [sys.executable, "-m", "checker"]


def wall(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> float:
    return statistics.median(_once(argv, ok) for _ in range(runs))


def _once(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        sys.exit(f"bench: {' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return seconds


def end_to_end() -> None:
    # the floor and the goal's check alternate, so that a machine that speeds up or
    # slows down during the batch moves both medians alike, not only the ratio
    floor_argv = [sys.executable, "-c", "import z3"]
    check_argv = [*CHECKER, "check", "--rule", "new", "--vcpus", "2", "--json"]
    pairs = [(_once(floor_argv), _once(check_argv)) for _ in range(15)]
    floor = statistics.median(f for f, _ in pairs)
    rows = [
        ("python -c 'import z3' (floor)", floor),
        ("check --rule new --vcpus 2", statistics.median(c for _, c in pairs)),
    ]
    with tempfile.TemporaryDirectory() as out:
        for vcpus in (4, 8, 16, 32):
            argv = [*CHECKER, "check", "--rule", "new", "--vcpus", str(vcpus), "--json"]
            rows.append(
                (f"check --rule new --vcpus {vcpus}", wall(argv, runs=5 if vcpus < 16 else 3))
            )
        # one rule in one era: both MMUs, every property, every vCPU count (the proofs
        # are for every number of vCPUs), end to end
        old = [*CHECKER, "check", "--rule", "old", "--era", "v6.4-v6.12", "--json", "--out", out]
        rows.append(("check --rule old --era v6.4-v6.12 (both MMUs)", wall(old, runs=5, ok=(1,))))
        legacy = [*CHECKER, "check", "--rule", "legacy", "--era", "v3.15-v4.3", "--json"]
        rows.append(
            (
                "check --rule legacy --era v3.15-v4.3 (counterexamples)",
                wall([*legacy, "--out", out], runs=5, ok=(1,)),
            )
        )
        history = [*CHECKER, "history", "--json", "--out", out]
        rows.append(("history (the whole suite)", wall(history, runs=3)))
        # the 2M SPTE model of clear-dirty-log-init-set: one era, both MMUs, as
        # shipped (two violations, four proofs each), then every era and fix
        scenario = "clear-dirty-log-init-set"
        huge = [*CHECKER, "check", "--rule", "new", "--scenario", scenario, "--json"]
        rows.append(
            (
                f"check --rule new --scenario {scenario} (both MMUs)",
                wall([*huge, "--out", out], runs=3, ok=(1,)),
            )
        )
        every = [*CHECKER, "scenario", scenario, "--out", out]
        rows.append((f"scenario {scenario} (every era and fix)", wall(every, runs=1)))
    rows.append(
        ("diff old new", wall([*CHECKER, "diff", "old", "new", "--json"], runs=5, ok=(0, 1)))
    )
    # one era, both MMUs (one process each, on two cores): classification, minimisation
    # and the SMT check (goal < 10 s); without hints every Spacer search runs
    synth = [*CHECKER, "synth", "--era", "v6.13", "--mmu", "both", "--json", "-q"]
    rows.append(("synth --era v6.13 --mmu both --no-cache", wall([*synth, "--no-cache"], runs=3)))
    rows.append(("synth --era v6.13 --mmu both (hints kept)", wall(synth, runs=3)))
    width = max(len(name) for name, _ in rows)
    print(f"{'end to end':<{width}}  {'wall s':>7}  {'x floor':>7}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.3f}  {seconds / floor:7.1f}")


def engines() -> None:
    from checker.engines import explicit, parametric
    from checker.engines.check import Options, Session, check_property
    from checker.engines.smt import Budget
    from checker.model import PROPERTIES, System
    from checker.rules.specs import load_rules

    rule = load_rules(ROOT / "specs")["new"]
    system = System(rule)
    print(
        f"\n{'engines, rule new':<18} {'explicit states':>16} {'up to symmetry':>15} "
        f"{'explicit s':>10} {'smt proof s':>11} {'all-vCPU s':>10}"
    )
    for vcpus in (2, 4, 8, 12, 16, 64):
        if vcpus <= 16:
            started = time.perf_counter()
            results = explicit.check_all(system, PROPERTIES, vcpus)
            explicit_s = time.perf_counter() - started
            exploration = next(iter(results.values())).exploration
            raw, reduced = f"{exploration.raw_states:,}", f"{exploration.reduced_states:,}"
            explicit_col = f"{explicit_s:10.2f}"
        else:
            raw = reduced = explicit_col = "-"
        session = Session(system)
        started = time.perf_counter()
        proofs = [check_property(rule, p, Options(vcpus=vcpus), session).proof for p in PROPERTIES]
        smt_s = time.perf_counter() - started
        started = time.perf_counter()
        for prop, proof in zip(PROPERTIES, proofs, strict=True):
            assert proof is not None
            assert parametric.certify_all(system, prop, proof.invariant, Budget()).ok
        all_s = time.perf_counter() - started
        print(
            f"{vcpus:>3} vCPUs{'':<10} {raw:>16} {reduced:>15} {explicit_col:>10} "
            f"{smt_s:11.2f} {all_s:10.2f}"
        )
    print("(smt proof: Spacer, certification at N and for every N; all-vCPU: that last part alone)")


#: SPIN's vCPU counts, and the longest search run (longer ones are estimated)
SPIN_VCPUS = (2, 4, 8, 10, 12)
SPIN_BUDGET_S = 60.0


#: runs its arguments as a command in a child of its own and prints the child's
#: wall time and peak resident memory (KB) on stderr. A child of this process would
#: report this process's own peak, which Linux keeps across fork and exec; a child
#: of this small, fresh one reports its own (or at worst this one's few MB).
PEAK = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(argv: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall time and peak resident memory (MB) of one run of ``argv``."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode not in ok:
        sys.exit(f"bench: {' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    seconds, kilobytes = done.stderr.split()[-2:]
    return float(seconds), int(kilobytes) / 1024


def spin_referee(budget: float = SPIN_BUDGET_S) -> None:
    from checker.engines import spin
    from checker.model import System
    from checker.rules.specs import load_rules

    print(
        f"\n{'SPIN vs SMT, rule new':<22} {'SPIN states':>12} {'compile s':>9} {'search s':>9} "
        f"{'pan MB':>7} {'check s':>8} {'check MB':>8} {'SPIN/check':>10}"
    )
    try:
        spin.tools()
    except spin.SpinUnavailable as exc:
        print(f"skipped: {exc}")
        return
    system = System(load_rules(ROOT / "specs")["new"])
    done: list[tuple[int, int, float]] = []  # (vCPUs, states, search seconds)
    for vcpus in SPIN_VCPUS:
        check_s, check_mb = measured([*CHECKER, "check", "--rule", "new", "--vcpus", str(vcpus)])
        estimate = _estimate(done, vcpus)
        if estimate is not None and estimate[1] > budget:
            states, seconds = estimate
            print(
                f"{vcpus:>3} vCPUs{'':<14} {'skipped':>12}  (about {states:,.0f} states and "
                f"{seconds:,.0f} s of search, extrapolated: over {budget:.0f} s)  "
                f"check {check_s:.2f} s, {check_mb:.0f} MB"
            )
            continue
        found = spin.run(system, vcpus, optimize=True)
        assert found.complete and not found.violations, found.problem
        total = found.compile_seconds + found.search_seconds
        done.append((vcpus, found.states, found.search_seconds))
        print(
            f"{vcpus:>3} vCPUs{'':<14} {found.states:>12,} {found.compile_seconds:9.2f} "
            f"{found.search_seconds:9.2f} {found.memory_mb:7.0f} {check_s:8.2f} "
            f"{check_mb:8.0f} {total / check_s:10.1f}"
        )
    print(
        "(SPIN: compile is spin -a and cc -O2, search is pan's exhaustive depth-first "
        "search, in this process; pan MB is its own memory report (states, hash table, "
        "stack); check is 'checker check --rule new --vcpus N' end to end, proving every "
        "property for every N, and its peak resident memory; SPIN/check is SPIN's "
        "compile and search over check's wall time)"
    )


def _estimate(done: list[tuple[int, int, float]], vcpus: int) -> tuple[float, float] | None:
    """States and search seconds at ``vcpus``, extrapolated from the last two runs:
    states grow by the same factor per vCPU, search time with the states times the
    vCPUs (each state has that many more steps to try)."""
    if len(done) < 2:
        return None
    (n0, s0, _), (n1, s1, t1) = done[-2], done[-1]
    growth = (s1 / s0) ** (1 / (n1 - n0))
    states = s1 * growth ** (vcpus - n1)
    return states, t1 * (states / s1) * (vcpus / n1)


def main(argv: list[str]) -> None:
    """``bench.py [--spin-budget S] [SECTION ...]``: the sections named (end-to-end,
    engines, spin; all by default); ``--spin-budget`` is the longest SPIN search
    run, in seconds, before the larger counts are extrapolated instead (60 by
    default: the 12-vCPU search takes about five minutes and 2 GB)."""
    budget = SPIN_BUDGET_S
    sections = {
        "end-to-end": end_to_end,
        "engines": engines,
        "spin": lambda: spin_referee(budget),
    }
    chosen = []
    args = iter(argv)
    for arg in args:
        if arg == "--spin-budget":
            budget = _seconds(next(args, ""))
        elif arg in sections:
            chosen.append(arg)
        else:
            _usage(f"unknown argument {arg!r}; give {', '.join(sections)} or --spin-budget S")
    for name in chosen or list(sections):
        sections[name]()


def _usage(problem: str) -> NoReturn:
    print(f"bench: {problem}", file=sys.stderr)
    sys.exit(2)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        _usage(f"--spin-budget takes seconds, not {text!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
