"""checker synth: the weakest safe rule, derived from the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker.cli import main
from checker.engines import synth
from checker.engines.check import Engine, Options, check_property
from checker.engines.diff import UpdateClass
from checker.model import PROPERTY_BY_NAME, Spte
from checker.model.paths import Mmu
from checker.rules import formula as F
from checker.rules import minimise
from checker.rules.specs import Era, Rule, load_eras, load_rule
from checker.verdict import Verdict

from .conftest import SPECS


@pytest.fixture(scope="module")
def eras() -> dict[str, Era]:
    return load_eras(SPECS)


@pytest.fixture(scope="module")
def shadow_613(eras: dict[str, Era]) -> synth.Synthesis:
    """v6.13's shadow MMU, synthesised once for the module (about 10 s)."""
    paths = eras["v6.13"].paths[Mmu.SHADOW]
    return synth.synthesize(paths, 2, label="v6.13/shadow", jobs=synth.default_jobs())


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


def test_tdp_613_only_asserts() -> None:
    eras = load_eras(SPECS)
    s = synth.synthesize(eras["v6.13"].paths[Mmu.TDP], 2, label="v6.13/tdp")
    assert s.rule.expression == "false"
    assert s.classification.needing(synth.Need.NEEDED) == []
    assert s.safe and s.precise


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
    out = tmp_path / "derived.toml"
    code = main(["synth", "--mmu", "tdp", "--compare", "new", "--json", "-q", "--write", str(out)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "kvm-flush-checker/synth/1"
    (era,) = doc["eras"]
    assert era["label"] == "v6.13/tdp"
    assert era["rule"]["expression"] == "false"
    assert {c["need"] for c in era["classes"]} == {"must not flush", "ignored"}
    rule = load_rule(out)
    assert rule.expression == "false"
    assert set(rule.expected.values()) == {Verdict.HOLDS}


def test_cli_refuses_era_and_since(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--era", "v6.13", "--since", "6.13"]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.slow
def test_since_60_shadow(capsys: pytest.CaptureFixture[str]) -> None:
    """Every era since v6.0, shadow MMU: one rule, and new compared in each."""
    code = main(["synth", "--since", "6.0", "--mmu", "shadow", "--compare", "new", "--json", "-q"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert [e["label"].split("/")[0] for e in doc["eras"]] == ["v6.0-v6.3", "v6.4-v6.12", "v6.13"]
    assert "combined" in doc
