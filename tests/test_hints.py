"""Hints: what Spacer found in an earlier run, used only once certified again.

A hint makes a run cheaper (counted here in Spacer searches, not seconds) and
never changes what it answers: a false, stale or unreadable hint is ignored, and
the run's results are the same as without one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from checker.cli import cli
from checker.engines import check, hints
from checker.engines.check import Options, PropertyResult, Session, check_property
from checker.engines.hints import HintStore, ProofHint, ViolationHint
from checker.engines.invariant import Invariant, Lemma, Lit, Var
from checker.engines.smt import Budget
from checker.model import PROPERTIES, PROPERTY_BY_NAME, HarvestFlush, Paths, Shape, System
from checker.rules.specs import Rule, adhoc_rule
from checker.verdict import Verdict

from .conftest import SPECS

STALE_W = PROPERTY_BY_NAME["stale_w"]


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every Spacer search the engines start, as (property, vCPUs)."""
    calls: list[tuple[str, int]] = []
    real = check._spacer

    def counted(system: System, vcpus: int, prop: Any, budget: Budget) -> Any:
        calls.append((prop.name, vcpus))
        return real(system, vcpus, prop, budget)

    monkeypatch.setattr(check, "_spacer", counted)
    return calls


def check_all(
    rule: Rule, store: HintStore | None, options: Options | None = None
) -> list[PropertyResult]:
    options = options or Options()
    session = Session(System(rule, options.paths, options.shape), options.max_states, store)
    return [check_property(rule, prop, options, session) for prop in PROPERTIES]


def same(a: list[PropertyResult], b: list[PropertyResult]) -> None:
    """Equal results, whatever the proofs' provenance."""

    def plain(r: PropertyResult) -> PropertyResult:
        proof = r.proof if r.proof is None else replace(r.proof, hinted=False)
        return replace(r, proof=proof)

    assert [plain(r) for r in a] == [plain(r) for r in b]


def hint_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("vcpus", [1, 2, 3])
def test_kept_invariants_spare_every_search_and_change_nothing(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]], vcpus: int
) -> None:
    rule, store = shipped_rules["new"], HintStore(tmp_path)
    options = Options(vcpus=vcpus)
    cold = check_all(rule, store, options)
    # precision and assertion hold by induction, without Spacer (no caller of this
    # era asserts the rule)
    assert len(searches) == 4
    assert len(hint_files(tmp_path)) == 4
    searches.clear()
    warm = check_all(rule, store, options)
    assert searches == []
    same(cold, warm)
    assert all(r.verdict is Verdict.HOLDS for r in warm)
    assert [r.proof is not None and r.proof.hinted for r in warm] == [True] * 4 + [False, False]
    assert all(r.proof is not None and r.proof.all_vcpus is not None for r in warm)
    assert all(r.proof is not None and r.proof.all_vcpus.ok for r in warm)  # type: ignore[union-attr]
    same(cold, check_all(rule, None, options))


@pytest.mark.parametrize("name", ["old", "legacy"])
def test_kept_violations_spare_every_search_and_give_the_same_trace(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]], name: str
) -> None:
    rule, store = shipped_rules[name], HintStore(tmp_path)
    cold = check_all(rule, store)
    assert searches
    searches.clear()
    warm = check_all(rule, store)
    assert searches == []
    same(cold, warm)
    # Options() checks v6.4-v6.12's shadow MMU (README's era table)
    violated = {"old": {"precision"}, "legacy": {"stale_w", "write_tracking", "precision"}}
    assert {r.prop.name for r in warm if r.verdict is Verdict.VIOLATED} == violated[name]


def test_no_store_no_hints(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]]
) -> None:
    check_all(shipped_rules["new"], None)
    check_all(shipped_rules["new"], None)
    assert len(searches) == 8


def _overwrite(store: HintStore, rule: Rule, name: str, hint: hints.Hint, vcpus: int = 2) -> Path:
    """Keep ``hint`` for ``rule``'s property ``name`` in place of what was kept."""
    system, prop = System(rule), PROPERTY_BY_NAME[name]
    key = store.key(system, prop, vcpus, Budget())
    assert key is not None
    path = store._path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hints.render(key, hint))
    assert store.recall(system, prop, vcpus, Budget()) == hint  # well-formed: it is read
    return path


def lemma(slots: int, *lits: tuple[str, int | None, bool]) -> Lemma:
    return Lemma(slots, tuple(sorted(Lit(Var(f, s), p) for f, s, p in lits)))


#: invariants that are no proof of stale_w at 2 vCPUs
FALSE_INVARIANTS = {
    # false in the initial state (nothing is present there)
    "not initiated": Invariant.of([lemma(0, ("present", None, True))]),
    # true, but it does not exclude a stale writable entry
    "not safe": Invariant(()),
    # safe, but not inductive: aging takes W away while a TLB keeps its entry
    "not inductive": Invariant.of([lemma(1, ("tlb_writable", 0, False), ("writable", None, True))]),
}


@pytest.mark.parametrize("why", sorted(FALSE_INVARIANTS))
def test_a_false_invariant_is_refused_and_spacer_decides(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]], why: str
) -> None:
    rule, store = shipped_rules["new"], HintStore(tmp_path)
    cold = check_all(rule, store)
    path = _overwrite(store, rule, "stale_w", ProofHint(FALSE_INVARIANTS[why], 2))
    searches.clear()
    warm = check_all(rule, store)
    assert searches == [("stale_w", 1)]
    same(cold, warm)
    assert warm[0].proof is not None and not warm[0].proof.hinted
    # the search's own invariant is kept in place of the false one
    assert cold[0].proof is not None and path.is_file()
    kept = store.recall(System(rule), STALE_W, 2, Budget())
    assert kept == ProofHint(cold[0].proof.invariant, cold[0].proof.found_with)


def test_a_hint_for_a_violated_property_is_refused(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]]
) -> None:
    """No invariant certifies a violated property: whatever a hint claims, the run
    finds the violation."""
    rule, store = shipped_rules["legacy"], HintStore(tmp_path)
    cold = check_all(rule, store)
    claimed = Invariant.of([lemma(1, ("tlb_writable", 0, False), ("mmu_writable", None, True))])
    _overwrite(store, rule, "stale_w", ProofHint(claimed, 2))
    searches.clear()
    warm = check_all(rule, store)
    assert ("stale_w", 1) in searches
    same(cold, warm)
    assert warm[0].verdict is Verdict.VIOLATED


@pytest.mark.parametrize(
    ("name", "prop", "length"),
    [
        # shorter than the shortest trace (5 steps): BMC finds none within it
        ("legacy", "write_tracking", 4),
        # a violation hint for a property that holds: BMC finds no trace at all
        ("new", "stale_w", 6),
    ],
)
def test_a_false_violation_hint_is_refused_and_spacer_decides(
    shipped_rules: dict[str, Rule],
    tmp_path: Path,
    searches: list[tuple[str, int]],
    name: str,
    prop: str,
    length: int,
) -> None:
    rule, store = shipped_rules[name], HintStore(tmp_path)
    cold = check_all(rule, store)
    _overwrite(store, rule, prop, ViolationHint(length))
    searches.clear()
    warm = check_all(rule, store)
    assert (prop, 1) in searches
    same(cold, warm)


def test_a_longer_violation_hint_still_gives_the_shortest_trace(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]]
) -> None:
    rule, store = shipped_rules["legacy"], HintStore(tmp_path)
    cold = check_all(rule, store)
    _overwrite(store, rule, "write_tracking", ViolationHint(40))
    searches.clear()
    warm = check_all(rule, store)
    assert searches == []
    same(cold, warm)
    assert warm[1].trace is not None and warm[1].trace.depth == 5


def _corruptions() -> dict[str, Callable[[dict[str, Any]], Any]]:
    def lemmas(data: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = data["proof"]["lemmas"]
        return found

    def set_in(path: Callable[[dict[str, Any]], Any], key: Any, value: Any) -> Callable[..., Any]:
        def change(data: dict[str, Any]) -> dict[str, Any]:
            path(data)[key] = value
            return data

        return change

    return {
        "empty": lambda d: b"",
        "truncated": lambda d: json.dumps(d).encode()[:40],
        "not utf-8": lambda d: b"\xff\xfe{}",
        "a list": lambda d: [],
        "nested deep": lambda d: b"[" * 100_000 + b"]" * 100_000,
        "another schema": set_in(lambda d: d, "schema", "checker.hint/0"),
        "another key": set_in(lambda d: d["key"], "vcpus", 3),
        "an extra field": set_in(lambda d: d, "extra", 1),
        "found with more vCPUs": set_in(lambda d: d["proof"], "found_with", 3),
        "found with 0 vCPUs": set_in(lambda d: d["proof"], "found_with", 0),
        "slots as a bool": set_in(lambda d: lemmas(d)[0], "slots", True),
        "too many slots": set_in(lambda d: lemmas(d)[0], "slots", 3),
        "an unknown variable": set_in(lambda d: lemmas(d)[0]["clause"][0], "var", "nonsense"),
        "a slot out of range": set_in(lambda d: lemmas(d)[0]["clause"][0], "slot", 1),
        "positive as a string": set_in(lambda d: lemmas(d)[0]["clause"][0], "positive", "yes"),
        "text not the clause": set_in(lambda d: lemmas(d)[0], "text", "true"),
        "an empty clause": set_in(lambda d: lemmas(d)[0], "clause", []),
        "lemmas not canonical": lambda d: set_in(
            lambda d: d["proof"], "lemmas", list(reversed(lemmas(d)))
        )(d),
        "a violation with 2 vCPUs": lambda d: {
            "schema": d["schema"],
            "key": d["key"],
            "violation": {"vcpus": 2, "length": 3},
        },
        "a violation 0 steps long": lambda d: {
            "schema": d["schema"],
            "key": d["key"],
            "violation": {"vcpus": 1, "length": 0},
        },
        "a proof and a violation": lambda d: {**d, "violation": {"vcpus": 1, "length": 3}},
        "too large": lambda d: b" " * (hints.MAX_HINT_BYTES + 1),
    }


CORRUPTIONS = _corruptions()


@pytest.fixture(scope="module")
def stale_w_hint(shipped_rules: dict[str, Rule], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """new's stale_w at 2 vCPUs: its result without a hint, and the hint kept."""
    store = HintStore(tmp_path_factory.mktemp("kept"))
    rule = shipped_rules["new"]
    result = check_property(rule, STALE_W, Options(), Session(System(rule), hints=store))
    key = store.key(System(rule), STALE_W, 2, Budget())
    assert key is not None
    return result, json.loads(store._path(key).read_text())


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_hint_file_is_ignored(
    shipped_rules: dict[str, Rule],
    tmp_path: Path,
    searches: list[tuple[str, int]],
    stale_w_hint: Any,
    how: str,
) -> None:
    rule, store = shipped_rules["new"], HintStore(tmp_path)
    cold, data = stale_w_hint
    key = store.key(System(rule), STALE_W, 2, Budget())
    assert key is not None
    path = store._path(key)
    path.parent.mkdir(parents=True)
    assert len(data["proof"]["lemmas"]) >= 2  # what the corruptions above take apart
    corrupt = CORRUPTIONS[how](json.loads(json.dumps(data)))
    path.write_bytes(corrupt if isinstance(corrupt, bytes) else json.dumps(corrupt).encode())
    assert store.recall(System(rule), STALE_W, 2, Budget()) is None
    warm = check_property(rule, STALE_W, Options(), Session(System(rule), hints=store))
    assert searches == [("stale_w", 1)]
    same([cold], [warm])
    # the search's invariant replaces what was there
    assert store.recall(System(rule), STALE_W, 2, Budget()) is not None


@pytest.mark.parametrize("what", ["a directory", "a FIFO", "a dangling symlink"])
def test_a_hint_that_is_not_a_file_is_ignored_and_not_replaced(
    shipped_rules: dict[str, Rule],
    tmp_path: Path,
    searches: list[tuple[str, int]],
    what: str,
    deadline: None,
) -> None:
    rule, store = shipped_rules["new"], HintStore(tmp_path)
    cold = check_all(rule, None)
    key = store.key(System(rule), STALE_W, 2, Budget())
    assert key is not None
    path = store._path(key)
    path.parent.mkdir(parents=True)
    if what == "a directory":
        path.mkdir()
    elif what == "a FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "nowhere" / "x.json")
    searches.clear()
    warm = check_all(rule, store)
    assert ("stale_w", 1) in searches
    same(cold, warm)
    assert path.is_dir() if what == "a directory" else not path.is_file()


def test_an_unwritable_store_is_no_error(
    shipped_rules: dict[str, Rule], tmp_path: Path, searches: list[tuple[str, int]]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = HintStore(blocker / "hints")  # a folder under a file: nothing can be written
    same(check_all(shipped_rules["new"], store), check_all(shipped_rules["new"], None))
    assert blocker.read_text() == ""


def test_the_key_covers_every_input_of_the_search(shipped_rules: dict[str, Rule]) -> None:
    store = HintStore(Path("unused"))
    new = shipped_rules["new"]
    base = store.key(System(new), STALE_W, 2, Budget())
    assert base is not None and base == store.key(System(new), STALE_W, 2, Budget())
    others = [
        store.key(System(new), STALE_W, 3, Budget()),
        store.key(System(new, Paths(harvest_flush=HarvestFlush.CHANGED)), STALE_W, 2, Budget()),
        store.key(System(new, shape=Shape(gfns=2)), STALE_W, 2, Budget()),
        store.key(System(new, shape=Shape(gfns=2, spte_of=(0, 0))), STALE_W, 2, Budget()),
        store.key(System(shipped_rules["old"]), STALE_W, 2, Budget()),
        store.key(System(new), PROPERTY_BY_NAME["dirty_log"], 2, Budget()),
        store.key(System(new), STALE_W, 2, Budget(rlimit=10**6)),
    ]
    paths = {store._path(k) for k in [base, *others] if k is not None}
    assert len(paths) == 1 + len(others)
    # the same formula written otherwise is the same search
    again = adhoc_rule("!is_mmu_writable_spte(new_spte) && is_mmu_writable_spte(old_spte)")
    respelled = adhoc_rule("is_mmu_writable_spte(old_spte)&&!is_mmu_writable_spte(new_spte)")
    assert store.key(System(respelled), STALE_W, 2, Budget()) == base
    assert store.key(System(again), STALE_W, 2, Budget()) != base


def test_another_checker_source_is_another_folder(
    shipped_rules: dict[str, Rule], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HintStore(tmp_path)
    system = System(shipped_rules["new"])
    first = store.key(system, STALE_W, 2, Budget())
    monkeypatch.setattr(hints, "source_sha256", lambda: "0" * 64)
    second = store.key(system, STALE_W, 2, Budget())
    assert first is not None and second is not None
    assert store._path(first).parent != store._path(second).parent
    monkeypatch.setattr(hints, "source_sha256", lambda: None)
    assert store.key(system, STALE_W, 2, Budget()) is None


def test_a_rule_of_another_kind_gets_no_hint(tmp_path: Path) -> None:
    from checker.report.lock import OpaqueRule

    store = HintStore(tmp_path)
    assert store.key(System(OpaqueRule()), STALE_W, 2, Budget()) is None  # type: ignore[arg-type]


def test_hint_files_are_canonical(shipped_rules: dict[str, Rule], tmp_path: Path) -> None:
    for folder in ("a", "b"):
        check_all(shipped_rules["legacy"], HintStore(tmp_path / folder))
    a, b = hint_files(tmp_path / "a"), hint_files(tmp_path / "b")
    assert a == b and len(a) == 5  # 2 proofs, 3 violations
    for data in a.values():
        text = data.decode("ascii")
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"
    assert not any(name.endswith(".tmp") for name in a)


def test_old_versions_of_the_source_are_pruned(
    shipped_rules: dict[str, Rule], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HintStore(tmp_path)
    foreign = tmp_path / f"{0:016x}" / "notes.txt"
    for i in range(hints.KEEP_VERSIONS + 3):
        old = tmp_path / f"{i:016x}"
        old.mkdir()
        (old / f"{'a' * 64}.json").write_text("{}")
        if old == foreign.parent:
            foreign.write_text("mine")
        os.utime(old, (i, i))
    check_all(shipped_rules["new"], store)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == hints.KEEP_VERSIONS + 1  # the one with a foreign file stays
    assert foreign.read_text() == "mine"
    assert f"{hints.KEEP_VERSIONS + 2:016x}" in folders  # the most recent are kept
    assert f"{1:016x}" not in folders
    assert not (foreign.parent / f"{'a' * 64}.json").exists()


@pytest.mark.parametrize(
    ("environ", "folder"),
    [
        ({"HOME": "/home/u"}, "/home/u/.cache/kvm-flush-checker"),
        ({"HOME": "/home/u", "XDG_CACHE_HOME": "/c"}, "/c/kvm-flush-checker"),
        ({"HOME": "/home/u", "XDG_CACHE_HOME": "relative"}, "/home/u/.cache/kvm-flush-checker"),
        ({"HOME": "/home/u", "CHECKER_CACHE_DIR": "/d"}, "/d"),
        ({"HOME": "/home/u", "CHECKER_CACHE_DIR": ""}, "/home/u/.cache/kvm-flush-checker"),
        ({"HOME": "/home/u", "CHECKER_CACHE_DIR": "/d", "CHECKER_CACHE": "0"}, None),
        ({"HOME": "/home/u", "CHECKER_CACHE": "off"}, None),
        ({"HOME": "/home/u", "CHECKER_CACHE": "1"}, "/home/u/.cache/kvm-flush-checker"),
        ({}, None),
    ],
)
def test_the_environment_names_the_store(environ: dict[str, str], folder: str | None) -> None:
    store = hints.store_from_environment(environ)
    assert (None if store is None else str(store.directory)) == folder


# --- through the command line -----------------------------------------------------------


@pytest.fixture
def runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., tuple[int, str, int]]]:
    """Run a command in this process: its exit code, stdout, and how many Spacer
    searches it started, here or in the processes it forks (each search is a line
    of a log file)."""
    log = tmp_path / "searches.log"
    real = check._spacer

    def logged(system: System, vcpus: int, prop: Any, budget: Budget) -> Any:
        with log.open("a") as f:
            f.write(f"{prop.name} {vcpus}\n")
        return real(system, vcpus, prop, budget)

    monkeypatch.setattr(check, "_spacer", logged)

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, int]:
        log.write_text("")
        with monkeypatch.context() as m:
            for k, v in (env or {}).items():
                m.setenv(k, v)
            result = CliRunner().invoke(cli, [*args, "--specs", str(SPECS)])
        # the one thing that differs between runs: each verdict's time
        stdout = re.sub(r" +\d+\.\d\ds ", " (time) ", result.stdout)
        return result.exit_code, stdout, len(log.read_text().splitlines())

    yield run


def test_check_prints_the_same_with_hints(
    runs: Callable[..., tuple[int, str, int]], tmp_path: Path
) -> None:
    for args in (
        ("check", "--all", "--json", "--out", str(tmp_path / "a")),
        ("check", "--rule", "new", "--vcpus", "3"),
    ):
        code, cold, searched = runs(*args)
        assert searched > 0
        again, warm, searched = runs(*args)
        assert (again, warm, searched) == (code, cold, 0), args


@pytest.mark.slow
def test_the_gate_shares_hints_with_check_and_prints_the_same(
    runs: Callable[..., tuple[int, str, int]], tmp_path: Path
) -> None:
    # the gate checks v6.13's shadow MMU; check the same (its traces kept out of the
    # checkout's committed counterexamples)
    runs("check", "--all", "--era", "v6.13", "--mmu", "shadow", "--json", "--out", str(tmp_path))
    code, warm, searched = runs("gate", "--json")
    assert searched == 0
    assert runs("gate", "--json", "--no-cache")[:2] == (code, warm)


@pytest.mark.parametrize("how", ["--no-cache", "CHECKER_CACHE=0"])
def test_hints_can_be_turned_off(
    runs: Callable[..., tuple[int, str, int]], hint_cache: Path, how: str
) -> None:
    flag = [how] if how.startswith("--") else []
    env = dict([how.split("=")]) if "=" in how else {}
    args = ("check", "--rule", "new", "--vcpus", "1", *flag)
    first = runs(*args, env=env)
    assert first == runs(*args, env=env) and first[2] > 0
    if flag:
        assert runs("gate", *flag)[2] > 0
    assert list(hint_cache.iterdir()) == []
