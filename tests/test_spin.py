"""SPIN as a referee: the Promela export agrees with the explicit engine.

For every shipped rule under every era at 1 to 3 vCPUs, SPIN's exhaustive
search of the exported model (``checker.engines.spin``) must find

* the explicit engine's verdict for every property (``explicit.check_all``);
* exactly the explicit engine's count of concrete reachable states, as states
  stored: SPIN has no symmetry reduction, so the count is the explicit engine's
  states up to vCPU symmetry with each one's orbit counted (``raw_states``), which
  ``tests/test_explicit.py`` shows equal to its exploration without symmetry (an
  exploration two to five times cheaper at 2 and 3 vCPUs, which lets CI run the
  whole matrix);
* for every violated property a trail that replays through the step function to
  a violation of that property.

Mutant rules show the comparison is not vacuous (they violate what ``new``
holds, and SPIN still agrees), and a Promela generator with one operation
dropped must fail it. The Promela text itself: deterministic, its expressions
evaluate as the model's (the folding Logic against Python bools), its header.

SPIN and a C compiler are needed: the tests skip without them, except under CI (CI
set), where they fail (.ci/run installs Debian's spin and gcc).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from checker.cli import cli
from checker.engines import explicit, promela, semantics, spin
from checker.engines.check import Engine, Options, Session, check_property
from checker.errors import InternalError
from checker.model import PROPERTIES, PROPERTY_BY_NAME, Kind, Paths, Shape, System
from checker.model.logic import CONCRETE
from checker.report.lock import model_sha256
from checker.rules.specs import adhoc_rule, load_eras, load_rules
from checker.text import vcpu_count

from .conftest import COUNTEREXAMPLES, FAST_ERAS, SPECS, one_gfn_eras

RULES = load_rules(SPECS)
ERAS = load_eras(SPECS)
#: every MMU of every shipped era with its own one-gfn model, by label ("v6.13/tdp")
ERA_PATHS = {
    f"{era.name}/{mmu.value}": paths
    for era in one_gfn_eras().values()
    for mmu, paths in era.paths.items()
}
VCPUS = (1, 2, 3)
#: rules that must disagree with 'new' somewhere: flush never, always, on any
#: update that leaves the SPTE read-only
MUTANTS = ("false", "true", "!is_writable_pte(new_spte)")


@pytest.fixture
def needs_spin() -> None:
    try:
        spin.tools()
    except spin.SpinUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; .ci/run installs them with apt-get")
        pytest.skip(f"{exc}; CI requires them")


def agree(
    system: System,
    vcpus: int,
    symmetric: bool = True,
    stepper: explicit.Stepper | None = None,
) -> spin.SpinRun:
    """SPIN and the explicit engine agree on ``system`` at ``vcpus`` vCPUs: the
    same verdicts, the same reachable states, every trail a replayed violation.
    ``symmetric``: the explicit engine explores up to vCPU symmetry and counts each
    state's orbit; else it explores every concrete state, as SPIN does. ``stepper``
    (of ``system``): one the explicit engine shares with other explorations."""
    # SPIN compiles in a thread of its own while the explicit engine explores
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(spin.run, system, vcpus)
        expected = explicit.check_all(
            system, PROPERTIES, vcpus, symmetric, max_states=None, stepper=stepper
        )
        found = running.result()
    assert found.complete, found.problem
    explored = next(iter(expected.values())).exploration
    assert found.states == explored.raw_states, f"state counts differ with {vcpu_count(vcpus)}"
    if not symmetric:
        assert found.states == explored.reduced_states == len(explored.parent)
    violated = {name for name, result in expected.items() if result.violated}
    assert set(found.violations) == violated, f"verdicts differ with {vcpu_count(vcpus)}"
    for name, violation in found.violations.items():
        assert_violates(system, name, violation.trace.initial, violation.trace.steps)
    return found


def assert_violates(system: System, name: str, initial: semantics.State, steps: Any) -> None:
    """The trace's actions, replayed here through the step function from its initial
    state, violate ``name`` at the end (and not before)."""
    prop = PROPERTY_BY_NAME[name]
    assert initial in semantics.initial_states(initial.vcpu_count, system.shape, system.model)
    state, last = initial, None
    for s in steps:
        assert not semantics.state_is_bad(prop, state)
        assert last is None or not semantics.step_is_bad(prop, last)
        last = semantics.step(system, state, s.action)
        assert last is not None and last.after == s.after
        state = last.after
    if prop.kind is Kind.STATE:
        assert semantics.state_is_bad(prop, state)
    else:
        assert last is not None and semantics.step_is_bad(prop, last)


def test_the_fast_eras_are_shipped_eras() -> None:
    assert set(FAST_ERAS) <= set(ERA_PATHS)


#: every (rule, era/MMU), each at 1, 2 and 3 vCPUs: 153 SPIN runs, each a compile
#: (about half a second) beside the explicit engine's exploration. The explorations
#: of one case share a stepper (what it works out with fewer vCPUs recurs with
#: more), which halves their time. CI runs them all (measured on 2 cores: its
#: suite took 290 s with 2 vCPUs in every era and 1-3 in the representative ones,
#: 379 to 403 s with the whole matrix as 153 separate cases, 356 s as these 51); a
#: plain make test runs the representative eras at 2 vCPUs only (below)
@pytest.mark.slow
@pytest.mark.parametrize("era", list(ERA_PATHS))
@pytest.mark.parametrize("rule", sorted(RULES))
def test_spin_agrees_with_the_explicit_engine(needs_spin: None, rule: str, era: str) -> None:
    system = System(RULES[rule], ERA_PATHS[era])
    stepper = explicit.Stepper(system)
    for vcpus in VCPUS:
        agree(system, vcpus, stepper=stepper)


@pytest.mark.skipif(
    bool(os.environ.get("CI")), reason="CI runs every era at 1-3 vCPUs (the test above)"
)
@pytest.mark.parametrize("era", FAST_ERAS)
def test_spin_agrees_at_2_vcpus_in_the_representative_eras(needs_spin: None, era: str) -> None:
    for rule in sorted(RULES):
        agree(System(RULES[rule], ERA_PATHS[era]), 2)


#: the vCPU counts of the reference and the mutants (3 is left to CI)
MUTANT_VCPUS = [1, 2, pytest.param(3, marks=pytest.mark.slow)]


@pytest.mark.parametrize("vcpus", MUTANT_VCPUS)
def test_new_holds_everything_and_spin_agrees(needs_spin: None, vcpus: int) -> None:
    """The reference the mutants below are compared with (checked once per vCPU
    count, not once per mutant); here SPIN's states are compared with the explicit
    engine's exploration without symmetry, state for state in number."""
    reference = agree(System(RULES["new"]), vcpus, symmetric=False)
    assert reference.violations == {}


@pytest.mark.parametrize("expression", MUTANTS)
@pytest.mark.parametrize("vcpus", MUTANT_VCPUS)
def test_mutant_rules_disagree_with_new_and_spin_sees_it(
    needs_spin: None, expression: str, vcpus: int
) -> None:
    # 'new' violates nothing (test_new_holds_everything_and_spin_agrees): a mutant
    # that violates something disagrees with it
    mutant = agree(System(adhoc_rule(expression)), vcpus)
    assert mutant.violations, f"{expression} holds everything 'new' holds"


@pytest.mark.slow
def test_spin_agrees_with_two_gfns_under_one_spte(needs_spin: None) -> None:
    """A shape with a TLB entry and a frame per gfn (5,116 states at 1 vCPU, which
    take the explicit engine 4 s or more; two gfns with an SPTE each, 31,372 states,
    take it a minute: that text is checked below)."""
    agree(System(RULES["legacy"], shape=Shape(gfns=2, spte_of=(0, 0))), 1)


@pytest.mark.parametrize(
    ("era", "mmu", "fix"),
    [
        ("v6.13", "shadow", None),
        pytest.param("v6.13", "tdp", None, marks=pytest.mark.slow),
        pytest.param("v5.14", "tdp", None, marks=pytest.mark.slow),
        pytest.param("v6.13", "shadow", "wp-w-only-unchecked-fast-path", marks=pytest.mark.slow),
    ],
)
def test_spin_agrees_on_the_2m_model(needs_spin: None, era: str, mmu: str, fix: str | None) -> None:
    """The 2M SPTE over two gfns (the scenario clear-dirty-log-init-set): the same
    verdicts and states at 1 vCPU, and every trail a replayed violation."""
    from checker.model.paths import Mmu
    from checker.rules.scenarios import load_scenarios
    from checker.rules.specs import load_eras

    scenario = load_scenarios(SPECS)["clear-dirty-log-init-set"]
    era_spec = load_eras(SPECS)[era]
    paths = era_spec.paths[Mmu(mmu)]
    if fix is not None:
        paths = scenario.fixes[fix].apply(paths)
    found = agree(System(RULES[era_spec.rule], paths, scenario.shape), 1)
    assert "write_tracking" in found.violations or fix is not None


def test_several_sptes_and_gfns_are_named_as_the_vocabulary_names_them() -> None:
    text = promela.export(System(RULES["new"], shape=Shape(gfns=2)), 3).text
    for line in ("bool writable_1 = false;", "bool dirty_bit_0 = false;"):
        assert f"\n{line}\n" in text
    assert "\nbool tlb_writable_1[3] = false;\n" in text
    assert 'printf("@action 1 guest_access@gfn1@vcpu0\\n");' in text


def test_spin_agrees_on_a_model_that_holds_the_lock_across_steps(needs_spin: None) -> None:
    from .test_agreement import LOCKING

    system = System(RULES["legacy"], model=LOCKING)
    agree(system, 2)
    assert "bool holds_mmu_lock_write[2] = false;" in promela.export(system, 2).text


# --- planted bugs -----------------------------------------------------------------------


@pytest.mark.parametrize("dropped", ["enable_flush", "guest_write", "zap"])
def test_a_promela_model_missing_an_operation_fails_the_comparison(
    needs_spin: None, monkeypatch: pytest.MonkeyPatch, dropped: str
) -> None:
    real = promela._alternatives

    def without(vocabulary: Any, props: Any) -> list[promela.Alternative]:
        return [a for a in real(vocabulary, props) if a.action.op != dropped]

    monkeypatch.setattr(promela, "_alternatives", without)
    # without "initially all set": it reaches, with no flush, the states the
    # enable's flush leads to, and would hide a dropped enable_flush at 1 vCPU
    paths = dataclasses.replace(Paths(), initially_set=False)
    with pytest.raises(AssertionError, match=r"state counts differ|verdicts differ"):
        agree(System(RULES["legacy"], paths), 1)


def test_a_trail_read_back_wrong_does_not_replay(
    needs_spin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trail whose last action is lost in reading is caught by the replay."""
    real = spin._replayed

    def short(system: System, prop: str, vcpus: int, ad: bool, actions: list[Any]) -> Any:
        return real(system, prop, vcpus, ad, actions[:-1])

    monkeypatch.setattr(spin, "_replayed", short)
    monkeypatch.setattr(spin, "_RUNS", {})  # run it again, not from memory
    with pytest.raises(InternalError, match="replay"):
        spin.run(System(RULES["old"]), 1)


# --- the SPIN engine -------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["legacy", "old"])
def test_the_spin_engine_finds_the_canonical_shortest_traces(needs_spin: None, rule: str) -> None:
    """``check --engine spin``: the explicit engine's verdict, trace length and
    fewest vCPUs for every property, and the very same traces (SPIN's
    breadth-first search takes the actions in their canonical order)."""
    session = Session(System(RULES[rule]))
    for prop in PROPERTIES:
        by_spin = check_property(RULES[rule], prop, Options(vcpus=2, engine=Engine.SPIN))
        explicitly = Options(vcpus=2, engine=Engine.EXPLICIT)
        by_explicit = check_property(RULES[rule], prop, explicitly, session)
        assert by_spin.summary == by_explicit.summary
        if by_spin.trace is not None:
            assert by_explicit.trace is not None
            assert by_spin.trace.initial == by_explicit.trace.initial
            assert by_spin.trace.steps == by_explicit.trace.steps
        assert "states stored by SPIN at 2 vCPUs" in by_spin.reason


def test_check_engine_spin_writes_the_committed_traces(needs_spin: None, tmp_path: Path) -> None:
    # 'old' in its own era, on the MMU where it violates (the committed counterexample)
    result = CliRunner().invoke(
        cli,
        ["check", "--rule", "old", "--engine", "spin", "--mmu", "shadow", "--out", str(tmp_path)],
    )
    assert result.exit_code == 1, result.output
    assert re.search(
        r"precision +VIOLATED +spin .* 2 steps, 1 vCPU +\(as expected\)", result.stdout
    )
    assert "1,382 states stored by SPIN at 2 vCPUs" in result.stdout
    written = sorted(p.name for p in (tmp_path / "old").iterdir())
    assert written == [
        "precision-1vcpus-v6.4-v6.12-shadow.graphml",
        "precision-1vcpus-v6.4-v6.12-shadow.json",
    ]
    for name in written:
        assert (tmp_path / "old" / name).read_bytes() == (
            COUNTEREXAMPLES / "old" / name
        ).read_bytes()


@pytest.mark.slow
def test_pan_compiled_with_O2_finds_the_same(needs_spin: None) -> None:
    system = System(RULES["legacy"])
    fast, slow = spin.run(system, 2, optimize=True), spin.run(system, 2, optimize=False)
    assert (fast.states, set(fast.violations)) == (slow.states, set(slow.violations))
    assert {k: v.trace for k, v in fast.violations.items()} == {
        k: v.trace for k, v in slow.violations.items()
    }


def test_a_missing_spin_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin.shutil, "which", lambda name: None)
    result = CliRunner().invoke(cli, ["check", "--rule", "new", "--engine", "spin"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "checker: error: the SPIN referee needs spin and cc, which is not installed; "
        "install it (apt-get install spin gcc)"
    ]


# --- the Promela text -------------------------------------------------------------------


def test_export_model_is_deterministic_and_says_what_it_is(tmp_path: Path) -> None:
    args = ["export-model", "--rule", "old", "--era", "v6.13", "--vcpus", "3"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    out = tmp_path / "old.pml"
    second = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert second.exit_code == 0 and second.stdout == ""
    assert out.read_text() == first.stdout
    text = first.stdout
    paths = ERA_PATHS["v6.13/shadow"]  # export-model: one MMU, the shadow MMU by default
    assert f" * model sha256: {model_sha256(paths, 3, 30)}\n" in text
    assert " * rule old: is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)\n" in text
    assert " * the rule in Promela: old_mmu_writable && !new_writable\n" in text
    assert " * paths: v6.13/shadow\n" in text and " *   prefetch = none\n" in text
    assert " *   mmu = shadow\n" in text and " *   aging_asserted = true\n" in text
    assert " * vCPUs: 3;" in text
    assert (
        " * written by: checker export-model --rule old --vcpus 3 --era v6.13 --mmu shadow\n"
        in text
    )
    properties = ", ".join(p.name for p in PROPERTIES)
    assert f" * properties: {properties}\n" in text
    assert "bool present = false;\n" in text and "bool tlb_writable[3] = false;\n" in text
    # one alternative per action of the era's model (no prefetch from v6.13)
    actions = semantics.actions(3, model=System(RULES["old"], paths).model)
    shown = re.findall(r'printf\("@action (\d+) ', text)
    assert [actions[int(i)].op for i in shown] == [a.op for a in actions]
    assert "prefetch" not in [a.op for a in actions]


def test_a_rule_text_cannot_end_the_header_comment() -> None:
    result = CliRunner().invoke(cli, ["export-model", "--expr", "1 /* x */ && 1"])
    assert result.exit_code == 0, result.output
    # "/*" inside a comment opens nothing; "*/" would close it
    assert " * rule expr: 1 /* x * / && 1\n" in result.stdout
    assert result.stdout.split("*/", 1)[1].startswith("\n\n/* the state:")


def test_expressions_fold_and_read_back_as_the_model_computes() -> None:
    """Every guard, update and assertion of the export, read back as Promela (the
    precedence of !, ==, &&, || and (c -> a : b)), gives what the step function
    gives, on every reachable state at 1 vCPU."""
    system = System(RULES["legacy"], Paths())
    vocabulary = promela._Vocabulary(system, 1)
    alternatives = {a.index: a for a in promela._alternatives(vocabulary, PROPERTIES)}
    explored, _ = explicit.explore(system, 1, symmetric=False)
    for state in explored.parent:
        values = dict(zip((x.text for x in vocabulary.variables()), _values(state), strict=True))
        for index, action in enumerate(semantics.actions(1, system.shape, system.model)):
            step = semantics.step(system, state, action)
            alt = alternatives.get(index)
            enabled = alt is not None and evaluate(alt.guard.text, values)
            assert enabled == (step is not None), (action.label, alt and alt.guard.text)
            if step is None or alt is None:
                continue
            after = _run(alt.statements, values)
            assert [after[x.text] for x in vocabulary.variables()] == _values(step.after)


def _values(state: semantics.State) -> list[bool]:
    from checker.model.vocabulary import leaves

    return [bool(x) for x in (*leaves(state.shared), *leaves(state.vcpus))]


def _run(statements: tuple[str, ...], values: dict[str, bool]) -> dict[str, bool]:
    """The assignments among ``statements``, run in order (the rest skipped)."""
    env = dict(values)
    # the scratch variables start at 0 (the properties' flags among them)
    env.update({name: False for s in statements for name in re.findall(r"chk_\w+", s)})
    for s in statements:
        m = re.fullmatch(r"([\w\[\]]+) = (.*);", s)
        if m is not None:
            env[m.group(1)] = evaluate(m.group(2), env)
    return env


@given(st.data())
def test_the_folding_logic_is_the_concrete_one(data: st.DataObject) -> None:
    names = ["a", "b", "c[0]"]
    env = {n: data.draw(st.booleans(), label=n) for n in names}
    text_terms: list[promela.Expr] = [promela.var(n) for n in names]
    text_terms += [promela.TRUE, promela.FALSE]
    bool_terms = [env[n] for n in names] + [True, False]
    T, C = promela.TEXT, CONCRETE
    ops: list[tuple[int, Callable[..., Any], Callable[..., Any]]] = [
        (1, T.not_, C.not_),
        (2, T.and_, C.and_),
        (3, T.and_, C.and_),
        (2, T.or_, C.or_),
        (3, T.or_, C.or_),
        (3, T.ite, C.ite),
        (2, T.iff, C.iff),
    ]
    for _ in range(data.draw(st.integers(1, 12))):
        arity, t, c = ops[data.draw(st.integers(0, len(ops) - 1))]
        picks = [data.draw(st.integers(0, len(text_terms) - 1)) for _ in range(arity)]
        text_terms.append(t(*(text_terms[i] for i in picks)))
        bool_terms.append(c(*(bool_terms[i] for i in picks)))
    for x, value in zip(text_terms, bool_terms, strict=True):
        assert evaluate(x.text, env) == value, x.text


def evaluate(text: str, env: dict[str, bool]) -> bool:
    """A Promela Boolean expression's value, parsed with Promela's precedence:
    ``!`` binds tightest, then ``==`` and ``!=``, then ``&&``, then ``||``; a
    conditional ``(c -> a : b)`` is always parenthesised."""
    tokens = re.findall(r"\w+(?:\[\d+\])?|&&|\|\||==|!=|->|[!():]", text)
    assert "".join(tokens) == re.sub(r"\s+", "", text), text
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        token = tokens[pos]
        assert expected is None or token == expected, (text, pos, token)
        pos += 1
        return token

    def disjunction() -> bool:
        value = conjunction()
        while peek() == "||":
            take()
            value = conjunction() or value
        return value

    def conjunction() -> bool:
        value = equality()
        while peek() == "&&":
            take()
            value = equality() and value
        return value

    def equality() -> bool:
        value = unary()
        while peek() in ("==", "!="):
            op = take()
            other = unary()
            value = (value == other) if op == "==" else (value != other)
        return value

    def unary() -> bool:
        if peek() == "!":
            take()
            return not unary()
        if peek() == "(":
            take()
            value = disjunction()
            if peek() == "->":
                take()
                then = disjunction()
                take(":")
                other = disjunction()
                value = then if value else other
            take(")")
            return value
        token = take()
        if token in ("true", "false"):
            return token == "true"
        return env[token]

    value = disjunction()
    assert pos == len(tokens), text
    return value


@pytest.mark.parametrize("era", ["v5.17", "v6.4-v6.12"])
def test_spin_agrees_on_a_pml_era(needs_spin: None, era: str) -> None:
    """Three initial states (PML the third): one move each from the first; on v5.17's
    TDP MMU also the two-step aging that holds mmu_lock across steps."""
    from checker.model.paths import Mmu
    from checker.rules.specs import load_eras

    from .conftest import SPECS

    paths = load_eras(SPECS)[era].paths[Mmu.TDP]
    system = System(RULES["new"], paths)
    assert len(semantics.initial_states(1, system.shape, system.model)) == 3
    text = promela.export(system, 1).text
    assert 'printf("@initial 2\\n");' in text
    agree(system, 1)


def test_names_are_promela_identifiers() -> None:
    assert promela.identifier("writable[1]") == "writable_1"
    assert promela.identifier("host.holds_mmu_lock_write") == "host_holds_mmu_lock_write"
    for taken in ("enabled", "chk_flush"):
        with pytest.raises(ValueError, match="taken"):
            promela.identifier(taken)


def test_the_shortest_variant_keeps_scratch_at_zero() -> None:
    text = promela.export(
        System(RULES["old"]), 1, props=[PROPERTY_BY_NAME["precision"]], shortest=True
    ).text
    assert "hidden" not in text and "chk_flush = 0;" in text
    assert (
        '    if\n    :: d_step { check_state() }\n    :: d_step { printf("@initial 1\\n");' in text
    )


def test_the_muted_variant_differs_only_in_initial_values() -> None:
    system = System(RULES["legacy"])
    plain = promela.export(system, 2).text.splitlines()
    muted = promela.export(system, 2, muted=["stale_w"]).text.splitlines()
    differ = [(a, b) for a, b in zip(plain, muted, strict=True) if a != b]
    assert differ == [
        ("hidden byte chk_reported_stale_w;", "hidden byte chk_reported_stale_w = 1;")
    ]
