"""`make bench`: end-to-end wall times of the checker, as figures (no pass/fail).

Each figure is the median of several runs of a fresh process, so it includes
interpreter start-up and imports; the floor is a bare `python -c "import z3"` run,
measured in the same session, and every figure is also given as a ratio to it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
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
    diff = [*CHECKER, "diff", "old", "new", "--json"]
    rows.append(("diff old new", wall(diff, runs=5, ok=(1,))))
    width = max(len(name) for name, _ in rows)
    print(f"{'command':<{width}}  {'wall s':>7}  {'x floor':>7}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.3f}  {seconds / floor:7.1f}")


if __name__ == "__main__":
    main()
