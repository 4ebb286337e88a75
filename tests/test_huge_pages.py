"""The model of a 2M SPTE over two gfns (``Shape(huge=True)``), the scenario of
``KVM_CLEAR_DIRTY_LOG`` in initially-all-set mode, its fixes, and the write-up
committed under ``counterexamples/clear-dirty-log-init-set``."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli
from checker.engines import explicit
from checker.engines.check import Engine, Options, Session, check_property
from checker.engines.semantics import State, initial_states, successors
from checker.model import PROPERTY_BY_NAME, Paths, Shape, System
from checker.model.declaration import model_for
from checker.model.logic import CONCRETE
from checker.model.paths import EagerSplit, FastHuge, HugeWriteProtect, Mmu
from checker.rules.scenarios import SHIPPED, load_scenarios
from checker.rules.specs import load_eras, load_rules
from checker.verdict import Verdict

from .conftest import COUNTEREXAMPLES, SPECS

HUGE = Shape(gfns=2, huge=True)
NAME = "clear-dirty-log-init-set"
ERAS = load_eras(SPECS)
RULES = load_rules(SPECS)
SCENARIO = load_scenarios(SPECS)[NAME]


def paths_of(era: str, mmu: str, **changes: object) -> Paths:
    return dataclasses.replace(ERAS[era].paths[Mmu(mmu)], **changes)  # type: ignore[arg-type]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def reachable(system: System, vcpus: int) -> list[State]:
    seen = set()
    frontier = list(initial_states(vcpus, system.shape, system.model))
    found = []
    while frontier:
        state = frontier.pop()
        key = (state.shared, state.vcpus)
        if key in seen:
            continue
        seen.add(key)
        found.append(state)
        frontier += [s.after for s in successors(system, state)]
    return found


# --- the shape and the window --------------------------------------------------------------


def test_the_2m_spte_is_the_last_and_named_so() -> None:
    assert HUGE.sptes == 3 and HUGE.huge_spte == 2
    names = model_for(Paths(), huge=True).shared_names(HUGE)
    assert "writable[2M]" in names and "writable[0]" in names
    with pytest.raises(ValueError, match="its own 4K SPTE"):
        Shape(gfns=2, spte_of=(0, 0), huge=True)


def test_a_gfn_is_mapped_by_the_2m_spte_while_it_is_present() -> None:
    model = model_for(Paths(), huge=True)
    shared = model.initial_shared(CONCRETE, HUGE)
    t, f = True, False
    big = dataclasses.replace(shared.sptes[2], present=t, writable=t, mmu_writable=t)
    shared = dataclasses.replace(shared, sptes=(shared.sptes[0], shared.sptes[1], big))
    window = model.window(CONCRETE, HUGE, shared, model.initial_actor(CONCRETE, HUGE), 1)
    assert window.spte is big
    after = window.with_spte(writable=f)
    assert not after.shared.sptes[2].writable and after.shared.sptes[1] is shared.sptes[1]
    # with the 2M SPTE gone, the gfn's own 4K SPTE
    gone = dataclasses.replace(shared, sptes=(shared.sptes[0], shared.sptes[1], shared.sptes[0]))
    window = model.window(CONCRETE, HUGE, gone, model.initial_actor(CONCRETE, HUGE), 1)
    assert window.with_spte(present=t).shared.sptes[1].present


@pytest.mark.parametrize(
    ("era", "mmu"), [("v6.13", "shadow"), ("v6.13", "tdp"), ("v5.10-v5.13", "tdp")]
)
def test_never_a_2m_and_a_4k_spte_at_once(era: str, mmu: str) -> None:
    """What every operation of the 2M model keeps, over every reachable state."""
    system = System(RULES[ERAS[era].rule], paths_of(era, mmu), HUGE)
    states = reachable(system, 1)
    assert len(states) > 100
    for state in states:
        big, *small = reversed(state.shared.sptes)
        assert not (big.present and any(s.present for s in small)), state


# --- the race --------------------------------------------------------------------------------


def decide(era: str, mmu: str, prop: str, engine: Engine = Engine.SMT, **changes: object):  # type: ignore[no-untyped-def]
    paths = paths_of(era, mmu, **changes)
    options = Options(vcpus=2, paths=paths, shape=HUGE, engine=engine)
    return check_property(RULES[ERAS[era].rule], PROPERTY_BY_NAME[prop], options)


@pytest.mark.parametrize("mmu", ["shadow", "tdp"])
def test_the_clear_leaves_a_writable_tlb_entry_to_a_tracked_gfn(mmu: str) -> None:
    """v6.13 as shipped: the shortest write_tracking trace goes through the clear's
    2M write-protect, a tracker's write-protect that changes nothing and does not
    flush, and a store before the clear's flush."""
    result = decide("v6.13", mmu, "write_tracking")
    assert result.verdict is Verdict.VIOLATED and result.trace is not None
    steps = result.trace.steps
    ops = [s.action.op for s in steps]
    assert ops.index("clear_dirty_log") < ops.index("write_protect") < ops.index("guest_write")
    assert "harvest_flush" not in ops
    protect = steps[ops.index("write_protect")]
    assert not protect.outcome.flush and protect.before.shared.sptes == protect.after.shared.sptes
    clear = steps[ops.index("clear_dirty_log")]
    big_before, big_after = clear.before.shared.sptes[2], clear.after.shared.sptes[2]
    assert big_before.mmu_writable and not big_after.mmu_writable
    # the eager split, where the era has it, did not run or failed
    assert not dict(clear.action.params).get("split", False)


def test_the_window_opens_in_v5_14() -> None:
    """Before v5.14 enabling write-protected huge SPTEs (MW kept) and the clear
    did not touch them: the window does not exist."""
    assert decide("v5.10-v5.13", "shadow", "write_tracking").verdict is Verdict.HOLDS
    assert decide("v5.14", "shadow", "write_tracking").verdict is Verdict.VIOLATED


@pytest.mark.parametrize("fix", ["at_clear_w_only", "at_clear_flushed"])
@pytest.mark.parametrize("mmu", ["shadow", "tdp"])
def test_each_fix_closes_the_window(fix: str, mmu: str) -> None:
    for prop in ("write_tracking", "stale_w", "dirty_log"):
        result = decide("v6.13", mmu, prop, huge_write_protect=HugeWriteProtect(fix))
        assert result.verdict is Verdict.HOLDS, (fix, mmu, prop)
        assert result.proof is not None and result.proof.all_vcpus is not None
        assert result.proof.all_vcpus.ok


def test_fix_a_needs_the_fast_paths_refusal_of_huge_sptes() -> None:
    result = decide(
        "v6.13",
        "shadow",
        "dirty_log",
        huge_write_protect=HugeWriteProtect.AT_CLEAR_W_ONLY,
        fast_huge=FastHuge.ALLOW,
    )
    assert result.verdict is Verdict.VIOLATED and result.trace is not None
    assert "huge_fast_page_fault" in [s.action.op for s in result.trace.steps]


def test_a_successful_eager_split_closes_the_window() -> None:
    """A split leaves 4K SPTEs that keep MW; a model where every clear splits
    (the split's parameter held true) has no trace."""
    system = System(RULES["new"], paths_of("v6.13", "tdp"), HUGE)
    clear = system.model.by_name("clear_dirty_log")
    assert clear.params == ("split",)
    always = dataclasses.replace(clear, effect=_split_always(clear.effect))
    ops = tuple(always if op is clear else op for op in system.model.operations)
    model = dataclasses.replace(system.model, operations=ops)
    forced = System(system.rule, system.paths, HUGE, model=model)
    assert not explicit.check(forced, PROPERTY_BY_NAME["write_tracking"], 1).violated
    assert explicit.check(system, PROPERTY_BY_NAME["write_tracking"], 1).violated


def _split_always(effect):  # type: ignore[no-untyped-def]
    def forced(L, w, p, paths):  # type: ignore[no-untyped-def]
        out = effect(L, w, p, paths)
        return dataclasses.replace(out, enabled=L.and_(out.enabled, p["split"]))

    return forced


def test_without_eager_split_the_clear_takes_no_split_parameter() -> None:
    system = System(RULES["old"], paths_of("v5.17", "tdp"), HUGE)
    assert system.paths.eager_split is EagerSplit.NONE
    assert system.model.by_name("clear_dirty_log").params == ()


@pytest.mark.parametrize(
    ("era", "mmu"), [("v6.13", "shadow"), pytest.param("v5.14", "tdp", marks=pytest.mark.slow)]
)
def test_smt_and_explicit_agree_on_the_2m_model(era: str, mmu: str) -> None:
    """Verdict, shortest trace length and its vCPUs, property by property (one
    explicit exploration at 2 vCPUs serves them all)."""
    rule = RULES[ERAS[era].rule]
    paths = paths_of(era, mmu)
    sessions = {
        engine: Session(System(rule, paths, HUGE)) for engine in (Engine.SMT, Engine.EXPLICIT)
    }
    for prop in PROPERTY_BY_NAME.values():
        found = {
            engine: check_property(
                rule, prop, Options(vcpus=2, paths=paths, shape=HUGE, engine=engine), session
            ).summary
            for engine, session in sessions.items()
        }
        assert found[Engine.SMT] == found[Engine.EXPLICIT], prop.name


# --- the command line ------------------------------------------------------------------------


def test_check_with_a_scenario_and_a_fix(tmp_path: Path) -> None:
    base = ["check", "--rule", "new", "--era", "v6.13", "--mmu", "shadow", "--out", str(tmp_path)]
    shipped = run(*base, "--scenario", NAME)
    assert shipped.exit_code == 1, shipped.output
    assert "scenario clear-dirty-log-init-set: 2 gfns, each with its 4K SPTE" in shipped.output
    assert "write_tracking  VIOLATED" in shipped.output and "(as expected)" in shipped.output
    fixed = run(*base, "--scenario", NAME, "--fix", "flush-under-lock")
    assert fixed.exit_code == 0, fixed.output
    assert "paths: v6.13/shadow+fix=flush-under-lock" in fixed.output
    written = sorted(p.name for p in (tmp_path / "new").iterdir())
    assert any(n.startswith("write_tracking-1vcpus-v6.13-shadow") for n in written), written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fix", "wp-w-only"], "--fix needs --scenario NAME"),
        (["--scenario", "nope"], "unknown scenario 'nope' (known: clear-dirty-log-init-set)"),
        (["--scenario", NAME, "--fix", "nope"], "has no fix 'nope' (its fixes: wp-w-only,"),
        (["--scenario", NAME, "--era", "v4.10-v5.6"], "needs manual-protect 'initially all set'"),
    ],
)
def test_bad_scenario_options_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = run("check", "--rule", "old", *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


def test_a_scenario_file_with_an_unknown_choice_is_refused(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    path = specs / "scenarios" / f"{NAME}.toml"
    path.write_text(path.read_text().replace("fast_huge = ", "fast_hug = "))
    result = run("scenario", NAME, "--specs", str(specs))
    assert result.exit_code == 2
    assert "fixes.wp-w-only-unchecked-fast-path.fast_hug': not a choice" in result.output


def test_every_cell_is_stated() -> None:
    from checker.engines.scenario import cells_to_check

    cells = cells_to_check(SCENARIO, ERAS)
    stated = {(label, variant) for label, e in SCENARIO.expect.items() for variant in e.violated}
    assert {(f"{e}/{m.value}", v) for e, m, v, _, _ in cells} == stated
    assert sum(1 for *_, v, _, _ in cells if v == SHIPPED) == 19


# --- the write-up, regenerated ---------------------------------------------------------------


@pytest.mark.slow
def test_the_committed_write_up_and_traces_are_regenerated_byte_for_byte(
    tmp_path: Path,
) -> None:
    result = run("scenario", NAME, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    committed = COUNTEREXAMPLES / NAME
    fresh = tmp_path / NAME
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in fresh.iterdir())
    for name in names:
        assert (fresh / name).read_bytes() == (committed / name).read_bytes(), name
    text = (committed / "README.md").read_text()
    for needed in ("| # | vCPU0 | host |", "## Fixes", "## Reproduce", "checker scenario " + NAME):
        assert needed in text
    assert list(itertools.islice(text.splitlines(), 1)) == [
        "# KVM: x86/mmu: KVM_CLEAR_DIRTY_LOG on a 2M SPTE in initially-all-set mode"
    ]


def test_eras_split_for_huge_pages_keep_their_one_gfn_model() -> None:
    """v5.10-v5.14 split at v5.14 and v6.0-v6.3 at v6.2 for huge-page choices only:
    the halves' one-gfn paths and models are the same, so their one-gfn verdicts
    are too; and the one-gfn model reads no huge-page choice."""
    for first, second in (("v5.10-v5.13", "v5.14"), ("v6.0-v6.1", "v6.2-v6.3")):
        assert ERAS[first].paths != ERAS[second].paths
        for mmu in ERAS[first].paths:
            a, b = ERAS[first].paths[mmu], ERAS[second].paths[mmu]
            assert a.one_gfn() == b.one_gfn()
            assert model_for(a) == model_for(b)
    every = [p for era in ERAS.values() for p in era.paths.values()]
    assert all(model_for(p) == model_for(p.one_gfn()) for p in every)


def test_a_scenario_whose_era_rule_is_missing_is_refused(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    (specs / "rules" / "old.toml").unlink()
    result = run("scenario", NAME, "--specs", str(specs))
    assert result.exit_code == 2
    assert "an era's rule 'old' is not in" in result.output
