"""`make bench`: timings of the checker, as figures (no pass/fail).

1. End to end: the median wall time of fresh `python -m checker` processes, so it
   includes interpreter start-up and imports; the floor is a bare
   `python -c "import z3"` run measured in the same session, and every figure is
   also given as a ratio to it.
2. Engines, in one process, rule `new` (every property holds, so every engine does
   its whole job), per vCPU count: the explicit engine's states (concrete and up
   to vCPU symmetry) and time; the SMT proof of all five properties at that count;
   and the certification of the same invariants for every number of vCPUs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHECKER = [sys.executable, "-m", "checker"]


def wall(argv: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - started)
        if done.returncode not in ok:
            sys.exit(f"bench: {' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return statistics.median(times)


def end_to_end() -> None:
    floor = wall([sys.executable, "-c", "import z3"], runs=7)
    rows = [("python -c 'import z3' (floor)", floor)]
    with tempfile.TemporaryDirectory() as out:
        for vcpus in (2, 4, 8, 16, 32):
            argv = [*CHECKER, "check", "--rule", "new", "--vcpus", str(vcpus), "--json"]
            rows.append(
                (f"check --rule new --vcpus {vcpus}", wall(argv, runs=5 if vcpus < 16 else 3))
            )
        legacy = [*CHECKER, "check", "--rule", "legacy", "--json", "--out", out]
        rows.append(("check --rule legacy (counterexamples)", wall(legacy, runs=5, ok=(1,))))
    rows.append(("diff old new", wall([*CHECKER, "diff", "old", "new", "--json"], runs=5, ok=(1,))))
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


if __name__ == "__main__":
    end_to_end()
    engines()
