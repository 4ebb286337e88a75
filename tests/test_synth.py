"""checker synth: the weakest safe rule, derived from the model."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from checker.cli import main
from checker.engines import explicit, forked, rulegraph, semantics, synth
from checker.engines.check import Engine, Options, check_property
from checker.engines.diff import UpdateClass
from checker.engines.semantics import State, Step
from checker.errors import Inconclusive, InternalError
from checker.model import PROPERTY_BY_NAME, Spte, System
from checker.model.paths import Mmu
from checker.rules import formula as F
from checker.rules import minimise
from checker.rules.specs import Era, Rule, load_eras, load_rule
from checker.verdict import Verdict

from .conftest import SPECS

NEW = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"


@pytest.fixture(scope="module")
def eras() -> dict[str, Era]:
    return load_eras(SPECS)


@pytest.fixture(scope="module")
def shadow_613(eras: dict[str, Era]) -> synth.Synthesis:
    """v6.13's shadow MMU, synthesised once for the module (about 10 s)."""
    paths = eras["v6.13"].paths[Mmu.SHADOW]
    return synth.synthesize(paths, 2, label="v6.13/shadow")


def test_derived_rule_of_613_is_new_on_every_reachable_class(
    shadow_613: synth.Synthesis, shipped_rules: dict[str, Rule]
) -> None:
    new = shipped_rules["new"]
    judged = synth.judge(new, shadow_613.classification)
    assert [j for j in judged if j.verdict not in ("ok", "free")] == []
    # and the minimised expression is new's own, written the same way
    assert shadow_613.rule.expression == new.expression
    assert F.equivalent(shadow_613.rule.formula, new.formula)


def test_classes_of_613_shadow(shadow_613: synth.Synthesis) -> None:
    c = shadow_613.classification
    assert c.broken == {}
    needed = c.needing(synth.Need.NEEDED)
    assert needed and all(i.update_class.clears_mmu_writable for i in needed)
    # aging asserts the answer since v6.13: its classes must not flush
    must_not = c.needing(synth.Need.MUST_NOT)
    assert must_not and all(set(i.callers) == {"aging"} for i in must_not)
    # the dirty-log write-protects ignore it
    assert all(
        i.callers.keys() <= {"enable_dirty_logging", "harvest"}
        for i in c.needing(synth.Need.IGNORED)
    )
    assert c.needing(synth.Need.CONFLICT) == []


def test_witnesses_skip_their_own_class(shadow_613: synth.Synthesis) -> None:
    for info in shadow_613.classification.needing(synth.Need.NEEDED):
        w = info.witness
        assert w is not None
        assert w.trace.prop.safety
        step = w.trace.steps[w.skipped_step - 1]
        assert step.operation.flush.acts_on_rule
        assert not step.outcome.flush  # the flush skipped


def test_derived_rule_is_proved_safe_and_precise(shadow_613: synth.Synthesis) -> None:
    assert shadow_613.safe and shadow_613.precise
    for r in shadow_613.results:
        assert r.verdict is Verdict.HOLDS, r.prop.name
        assert r.proof is not None and r.proof.all_vcpus is not None and r.proof.all_vcpus.ok


def test_removing_a_needed_class_breaks_safety(
    shadow_613: synth.Synthesis, eras: dict[str, Era]
) -> None:
    c = shadow_613.classification
    needed = {i.update_class for i in c.needing(synth.Need.NEEDED)}
    dropped = sorted(needed)[0]
    rule = synth.TableRule.of("needed-but-one", needed - {dropped})
    paths = eras["v6.13"].paths[Mmu.SHADOW]
    options = Options(vcpus=2, paths=paths, engine=Engine.EXPLICIT)
    result = check_property(rule, PROPERTY_BY_NAME["stale_w"], options)
    assert result.verdict is Verdict.VIOLATED
    assert result.trace is not None
    # the violation goes through the dropped class
    assert synth._skipped_step(result.trace, dropped) >= 1
    # while the table of every needed class is safe
    full = synth.TableRule.of("needed", needed)
    assert check_property(full, PROPERTY_BY_NAME["stale_w"], options).verdict is Verdict.HOLDS


# --- the shared state graph --------------------------------------------------------------------


def test_rule_graph_explores_as_the_explicit_engine(shipped_rules: dict[str, Rule]) -> None:
    """One graph, explored under rules that answer differently on the same steps,
    reaches what the explicit engine reaches under each, with the same classes
    consulted, and finds each property's shortest violation at the same depth: a
    step computed under one rule is reused under another only where their answers
    agree."""
    paths = load_eras(SPECS)["v6.13"].paths[Mmu.SHADOW]
    graph = rulegraph.RuleGraph(paths, 2, synth.SAFETY)
    never = synth.TableRule.of("never", ())
    always = synth.TableRule.of("always", (), complement=True)
    violations: dict[str, dict[str, int]] = {}
    for rule in (shipped_rules["new"], never, always):
        consulted: set[UpdateClass] = set()
        shortest = violations[rule.name] = {}

        def visit(
            ex: explicit.Exploration,
            parent: State,
            step: Step,
            consulted: set[UpdateClass] = consulted,
            shortest: dict[str, int] = shortest,
        ) -> bool:
            depth = ex.depth[parent] + 1
            for p in synth.SAFETY:
                if semantics.step_is_bad(p, step) or semantics.state_is_bad(p, step.after):
                    shortest.setdefault(p.name, depth)
            if step.outcome.rule_consulted:
                window = step.before.window(step.action)
                for old, new in zip(window.shared.sptes, step.after.shared.sptes, strict=True):
                    if old.present and old != new:
                        consulted.add(UpdateClass(old, new, window.slot.ad_enabled))
            return False

        ex, _ = explicit.explore(System(rule, paths), 2, visit=visit)
        found, raw = rulegraph.reach(graph, rule)
        assert raw == ex.raw_states, rule.name
        assert set(found) == consulted, rule.name
        for prop in synth.SAFETY:
            hit = rulegraph.first_violation(graph, rule, [prop])
            depth = None if hit is None else len(hit[2])
            assert depth == shortest.get(prop.name), (rule.name, prop.name)
    # the rules do differ where it matters: new keeps everything, never flushing
    # leaves writable entries behind, flushing always fires aging's WARN_ON_ONCE
    assert violations["new"] == {}
    assert violations["never"]["stale_w"] == 3
    assert violations["always"] == {"assertion": 2}


def _slow_then_fast(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def _inconclusive() -> None:
    raise Inconclusive("more than 10 states")


def _crash() -> None:
    raise KeyError("boom")


def test_forked_answers_in_order_and_errors_of_their_kind() -> None:
    started: list[int] = []
    tasks = [(0.3, 1), (0.0, 2), (0.0, 3)]
    assert list(forked.run(_slow_then_fast, tasks, 2, started.append)) == [1, 2, 3]
    assert started == [0, 1, 2]
    with pytest.raises(Inconclusive, match="more than 10 states"):
        list(forked.run(_inconclusive, [(), ()], 2))
    with pytest.raises(InternalError, match="KeyError: 'boom'"):
        list(forked.run(_crash, [(), ()], 2))
    # one job: in this process
    assert list(forked.run(_slow_then_fast, tasks, 1)) == [1, 2, 3]


# --- minimisation ----------------------------------------------------------------------------


def _spte(**bits: bool) -> Spte[bool]:
    return Spte(**{f: bits.get(f, False) for f in Spte.__dataclass_fields__})  # type: ignore[arg-type]


def test_minimise_finds_the_fewest_helpers() -> None:
    mw = _spte(present=True, mmu_writable=True, host_writable=True)
    w = _spte(present=True, writable=True, mmu_writable=True, host_writable=True)
    ro = _spte(present=True, host_writable=True)
    required = {
        UpdateClass(mw, ro, False): True,
        UpdateClass(w, ro, True): True,
        UpdateClass(w, mw, False): False,
        UpdateClass(ro, w, False): False,
        UpdateClass(ro, _spte(present=True, host_writable=True, accessed=True), True): False,
    }
    found = minimise.minimise(required)
    assert found.expression == "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
    assert found.literals == 2


def test_minimise_constants_and_clashes() -> None:
    a = UpdateClass(_spte(present=True), _spte(present=True, accessed=True), True)
    assert minimise.minimise({a: True}).expression == "true"
    assert minimise.minimise({a: False}).expression == "false"
    with pytest.raises(minimise.Unseparable):
        # two classes every helper agrees on (the raw A bit without A/D is no helper's)
        b = UpdateClass(_spte(present=True), _spte(present=True, accessed=True), False)
        c = UpdateClass(_spte(present=True), _spte(present=True), False)
        minimise.minimise({b: True, c: False})


# --- the command -------------------------------------------------------------------------------


def test_cli_json_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both MMUs of v6.13 (over two processes where there are two cores): the JSON
    document, and the spec --write leaves, which 'checker check' reads and finds
    as expected."""
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    out = specs / "rules" / "derived.toml"
    argv = ["synth", "--mmu", "both", "--compare", "new", "--json", "-q", "--write", str(out)]
    code = main([*argv, "--specs", str(specs)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "kvm-flush-checker/synth/1"
    shadow, tdp = doc["eras"]
    assert (shadow["label"], tdp["label"]) == ("v6.13/shadow", "v6.13/tdp")
    assert shadow["rule"]["expression"] == NEW
    assert tdp["rule"]["expression"] == "false"
    assert {c["need"] for c in tdp["classes"]} == {"must not flush", "ignored"}
    assert all(
        c["compared"]["verdict"] in ("ok", "free") for e in doc["eras"] for c in e["classes"]
    )
    assert doc["combined"]["expression"] == NEW
    assert [e["needless"] for e in doc["combined"]["per_era"]] == [0, 0]
    rule = load_rule(out)
    assert rule.expression == NEW
    assert set(rule.expected.values()) == {Verdict.HOLDS}
    # checker check reads it and finds its verdicts as expected; the gate records it
    assert main(["check", "--rule", "derived", "--specs", str(specs), "-q"]) == 0
    assert capsys.readouterr().out.count("(as expected)") == 12  # six properties, two MMUs
    assert main(["gate", "--update", "--specs", str(specs), "-q"]) == 0
    assert '"derived"' in (specs / "verdicts.lock.json").read_text()
    assert main(["gate", "--specs", str(specs), "-q"]) == 0


def test_cli_refuses_era_and_since(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--era", "v6.13", "--since", "6.13"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.slow
def test_since_60_shadow(capsys: pytest.CaptureFixture[str]) -> None:
    """Every era since v6.0, shadow MMU: one rule, and new compared in each."""
    code = main(["synth", "--since", "6.0", "--mmu", "shadow", "--compare", "new", "--json", "-q"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert [e["label"].split("/")[0] for e in doc["eras"]] == [
        "v6.0-v6.1",
        "v6.2-v6.3",
        "v6.4-v6.12",
        "v6.13",
    ]
    assert "combined" in doc
