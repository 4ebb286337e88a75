"""Shared fixtures: the repository's own specs, and Hypothesis eras."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from checker.model import Paths, System
from checker.report import lock as lockfile
from checker.rules.specs import Era, Rule, load_eras, load_rules

if TYPE_CHECKING:
    from checker.report.gate import GateReport, GateSettings

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
#: a representative few era/MMUs for the fast run (the oldest, the TDP MMU before
#: its write-protect fix, the shadow MMU before b64d740ea7dd, 'old''s own era, today's
#: on both MMUs); the slow run covers every one
FAST_ERAS = (
    "v3.x/shadow",
    "v5.15-v5.16/tdp",
    "v5.17/shadow",
    "v6.4-v6.12/shadow",
    "v6.13/shadow",
    "v6.13/tdp",
)
COUNTEREXAMPLES = ROOT / "counterexamples"


def one_gfn_eras() -> dict[str, Era]:
    """The shipped eras, oldest first, less those whose every MMU has an earlier
    era's paths where the one-gfn model reads them (``Paths.one_gfn``): such an era
    (v5.14 after v5.10-v5.13, v6.2-v6.3 after v6.0-v6.1, split for huge-page code
    only) is the same system for every test of the one-gfn model, and
    test_huge_pages checks that it is."""
    seen: set[tuple[Paths, ...]] = set()
    kept = {}
    for name, era in load_eras(SPECS).items():
        key = tuple(p.one_gfn() for p in era.paths.values())
        if key not in seen:
            seen.add(key)
            kept[name] = era
    return kept


# z3 calls vary in latency, so no per-example deadline; CI runs more examples.
settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


#: the test files whose tests keep their hints in a folder of their own, empty at
#: the start: they test the hints themselves, or signal a run at moments that a
#: kept hint would make it outrun
OWN_HINTS = frozenset({"test_hints", "test_interrupt"})


@pytest.fixture(scope="session")
def shared_hints(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hints every other test keeps and finds: a folder under pytest's cache
    (.pytest_cache), so one run's searches spare the next's; without the cache
    plugin, one folder for the session, shared by its xdist workers. A hint is
    only a hint: the checker certifies a kept invariant, and replays a trace found
    within a kept length, exactly as it does what Spacer finds, and prints the same
    with or without one (tests/test_hints.py); its key covers the checker's source,
    so an edit to the model or the engines starts afresh."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        folder: Path = cache.mkdir("hints")
        return folder
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        base = base.parent  # the session's folder, above each worker's own
    folder = base / "hints"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def hint_cache(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Where the checker keeps its hints (``checker.engines.hints``) during a test,
    never the user's own folder: the tests of :data:`OWN_HINTS` each have one of
    their own, empty at the start, so that no test there sees what another found;
    the rest share :func:`shared_hints`. The commands and subprocesses a test runs
    inherit it."""
    if request.module.__name__.rpartition(".")[2] in OWN_HINTS:
        folder = tmp_path_factory.mktemp("hints")
    else:
        folder = request.getfixturevalue("shared_hints")
    monkeypatch.delenv("CHECKER_CACHE", raising=False)
    monkeypatch.setenv("CHECKER_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def shipped_rules() -> dict[str, Rule]:
    return load_rules(SPECS)


@pytest.fixture(scope="session")
def systems(shipped_rules: dict[str, Rule]) -> dict[str, System]:
    """Each shipped rule with the default paths around it."""
    return {name: System(rule) for name, rule in shipped_rules.items()}


# --- the gate's tests run many gates over the same few rules -----------------------------

_RESULTS: dict[tuple[object, ...], object] = {}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Memoise ``check_property`` as the gate calls it, and log which rules it checks.

    A result is a value of (rule name, formula, property, options), so each is
    computed once per session; the log (one rule name per property checked) shows
    what a gate run re-checked.
    """
    from checker.engines import check
    from checker.report import gate

    calls: list[str] = []
    real = check.check_property

    def cached(
        rule: Rule, prop: object, options: check.Options, encodings: object = None
    ) -> check.PropertyResult:
        calls.append(rule.name)
        key = (rule.name, rule.formula, getattr(prop, "name", prop), options)
        if key not in _RESULTS:
            _RESULTS[key] = real(rule, prop, options)  # type: ignore[arg-type]
        result = _RESULTS[key]
        assert isinstance(result, check.PropertyResult)
        return result

    monkeypatch.setattr(gate, "check_property", cached)
    return calls


@pytest.fixture
def lock() -> lockfile.Lock:
    """The shipped verdicts lockfile."""
    read = lockfile.read(SPECS / lockfile.LOCK_NAME)
    assert read is not None
    return read


@pytest.fixture
def regressed_report(
    checks: list[str], shipped_rules: dict[str, Rule], lock: lockfile.Lock
) -> GateReport:
    """The gate over ``scenarios.new_regressed``, located in this repository, as the
    report writers (JUnit, SARIF, GitHub) see it."""
    from checker.report.gate import gate

    from .scenarios import new_regressed

    # on the lock's own paths: the newest era (v6.13), shadow MMU
    return gate(
        new_regressed(shipped_rules),
        lock,
        settings_for("v6.13"),
        lock_path=SPECS / lockfile.LOCK_NAME,
        root=ROOT,
    )


def settings_for(era: str) -> GateSettings:
    """The gate's settings for ``era``'s shadow MMU, as 'checker gate --era ERA' has them."""
    from checker.cli.common import resolve_paths
    from checker.engines.check import Options
    from checker.report.gate import GateSettings

    (choice,) = resolve_paths(SPECS, era, "shadow", None, None)
    return GateSettings(options=Options(paths=choice.paths), era=choice.label)


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail the test (TimeoutError) if it runs for 10 s: a blocked open() is a hang,
    and a hang must fail the test, not stop the suite."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("hung for 10 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
