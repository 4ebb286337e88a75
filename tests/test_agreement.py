"""The four interpretations of the one declared model agree, and a planted bug in any
one of them is caught.

The model (``checker.model``) is declared once; the engines interpret it four ways:

* the step function (``checker.engines.semantics``), Python bools;
* the explicit engine's successors (``checker.engines.explicit.Stepper``), memoised,
  with vCPU symmetry;
* the z3 transition relation at N vCPUs (``checker.engines.encode``);
* the parametric encoding over an uninterpreted vCPU sort
  (``checker.engines.parametric``), made finite here: N distinct constants and the
  axiom that every vCPU is one of them.

For arbitrary states (reachable or not), every action (operation, actor, gfn,
parameters), shipped and random rules, every path policy, 1 to 3 vCPUs, and three
shapes (one gfn; two gfns with an SPTE each; two gfns under one SPTE), the tests
below check that

* an action is enabled by the step function iff the explicit successor, the z3
  step and the parametric step allow it, and each gives the same successor, the
  only one;
* with symmetry, the explicit successors are the step function's up to a
  permutation of the vCPUs;
* every property's bad predicate gives the same answer in all of them.

A second model, the shipped one plus operations that keep ``mmu_lock`` across
steps and remember a value between them (a vCPU section under the lock held for
write, a host section under it held for read), exercises actors' locals and the
lock state the same way. The planted-bug tests change one operation in one
interpretation and require a disagreement.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import z3
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from checker.engines import encode, explicit, parametric, semantics, smt
from checker.engines.encode import Encoding
from checker.engines.parametric import AllVcpus
from checker.engines.smt import SEED, Budget, new_solver
from checker.model import (
    MODEL,
    Actor,
    ActorKind,
    Effect,
    Flush,
    Hold,
    Kind,
    Local,
    LockMode,
    Model,
    Operation,
    Outcome,
    Part,
    Paths,
    Reach,
    Shape,
    System,
    TlbEntry,
)
from checker.model.paths import Mmu
from checker.model.vocabulary import leaves, rebuild
from checker.rules import formula as F
from checker.rules.specs import adhoc_rule, load_eras

from .conftest import FAST_ERAS, SPECS, one_gfn_eras
from .test_encode import NO_SHRINK, RULE_TEXTS, FormulaRule, formulas, paths_strategy

# --- a model that holds mmu_lock across steps -----------------------------------------

SAW_WRITABLE = Local("saw_writable", "the SPTE was writable when the section began")


def _begin(L: Any, w: Any, p: Any, paths: Paths) -> Effect[Any]:
    """Take mmu_lock for write and remember whether the SPTE is writable."""
    return Effect(w.spte.present, w.with_local(saw_writable=w.spte.writable), L.const(False))


def _end(L: Any, w: Any, p: Any, paths: Paths) -> Effect[Any]:
    """Write-protect the SPTE if it was writable at the start; drop mmu_lock."""
    seen = w.local("saw_writable")
    after = w.with_spte(writable=L.and_(w.spte.writable, L.not_(seen)))
    return Effect(L.const(True), after.with_local(saw_writable=L.const(False)), L.const(False))


def _reader(L: Any, w: Any, p: Any, paths: Paths) -> Effect[Any]:
    """A host thread under mmu_lock for read: clears the SPTE's Accessed bit."""
    return Effect(w.spte.present, w.with_spte(accessed=L.const(False)), L.const(False))


def _toy(
    name: str, actor: ActorKind, lock: LockMode, hold: Hold, effect: Any, flush: Flush
) -> Operation:
    return Operation(
        name=name,
        title=name,
        function=name,
        path=name,
        source="a test's own operation",
        actor=actor,
        lock=lock,
        reach=Reach.GFN,
        flush=flush,
        writes=frozenset({Part.SPTE, Part.LOCAL}),
        effect=effect,
        hold=hold,
        locals=(SAW_WRITABLE,) if actor is ActorKind.VCPU else (),
    )


LOCKING = Model(
    (
        *MODEL.operations,
        _toy("section_begin", ActorKind.VCPU, LockMode.WRITE, Hold.ACQUIRE, _begin, Flush.NEVER),
        _toy("section_end", ActorKind.VCPU, LockMode.WRITE, Hold.RELEASE, _end, Flush.RULE),
        _toy("read_begin", ActorKind.HOST, LockMode.READ, Hold.ACQUIRE, _reader, Flush.NEVER),
        _toy("read_end", ActorKind.HOST, LockMode.READ, Hold.RELEASE, _reader, Flush.NEVER),
    ),
    MODEL.properties,
)

#: "shipped": the model of the paths checked (``model_for(paths)``: the operations of
#: that era and MMU, each as it performs them); "locking": the full model plus
#: operations that keep mmu_lock across steps
MODELS = {"shipped": MODEL, "locking": LOCKING}
#: every MMU of every shipped era with its own one-gfn model, by label
ERA_PATHS = {
    f"{era.name}/{mmu.value}": paths
    for era in one_gfn_eras().values()
    for mmu, paths in era.paths.items()
}
SHAPES = {"1gfn": Shape(), "2gfns": Shape(gfns=2), "2gfns-1spte": Shape(gfns=2, spte_of=(0, 0))}
VCPU_COUNTS = (1, 2, 3)

# an example checks every action (up to 80 at 3 vCPUs and two gfns) in the two
# encodings: 0.1 to 0.5 s. CI runs more.
EXAMPLES = 60 if os.environ.get("CI") else 30


# --- arbitrary states -------------------------------------------------------------------


def _valid(record: Actor[bool]) -> Actor[bool]:
    """A TLB entry is never writable without being cached, nor dirty without being
    writable."""
    tlbs = tuple(
        TlbEntry(t.cached, t.cached and t.writable, t.cached and t.writable and t.dirty)
        for t in record.tlbs
    )
    return Actor(tlbs, record.local)


def make_state(model: Model, shape: Shape, n: int, bits: Sequence[bool]) -> semantics.State:
    """The state whose leaves, in vocabulary order, are ``bits``."""
    from checker.model.logic import CONCRETE

    values = iter(bits)
    shared = rebuild(model.initial_shared(CONCRETE, shape, False), values)
    template = model.initial_actor(CONCRETE, shape)
    vcpus = tuple(_valid(rebuild(template, values)) for _ in range(n))
    return semantics.State(shared, vcpus, shape, model)


def size(model: Model, shape: Shape, n: int) -> int:
    return len(model.shared_names(shape)) + n * len(model.vcpu_names(shape))


def states(model: Model, shape: Shape, n: int) -> st.SearchStrategy[semantics.State]:
    k = size(model, shape, n)
    return st.lists(st.booleans(), min_size=k, max_size=k).map(
        lambda bits: make_state(model, shape, n, bits)
    )


# --- the harness --------------------------------------------------------------------------


class Harness:
    """The parametric step of ``system`` over a domain of exactly ``n`` vCPUs, and the
    z3 transition relation with ``n`` vCPUs, in one fresh context."""

    def __init__(self, system: System, n: int) -> None:
        self.system, self.n = system, n
        self.allv = allv = AllVcpus(system)
        ctx = allv.vocab.ctx
        self.vcpus = [allv.vocab.vcpu(f"vcpu{i}") for i in range(n)]
        x = allv.vocab.vcpu("x")
        self.solver = z3.Solver(ctx=ctx)
        self.solver.set("random_seed", SEED)
        if n > 1:
            self.solver.add(z3.Distinct(*self.vcpus))
        self.solver.add(z3.ForAll([x], z3.Or(*(x == v for v in self.vcpus))))
        self.enc = Encoding(system, n, context=ctx)
        self.enc_step = self.enc.transition(0)
        self.enc_solver = new_solver(Budget(), ctx)
        self.enc_solver.add(self.enc_step.formula)
        # the vCPUs' records before and after the step, and every leaf of the state
        # before and after, built once: z3 shares equal terms, so these are the very
        # terms a fresh ``allv.after(v)`` would build for each comparison
        self.before = [allv.vocab.record(allv.tlb0, v) for v in self.vcpus]
        self.after = [allv.after(v) for v in self.vcpus]
        self.before_leaves = _flat(allv.g0, self.before)
        self.after_leaves = _flat(allv.g1, self.after)
        # each leaf's two literals (false, true), and each action's constraints,
        # made once: an example asks for them about a hundred times
        self.before_literals = [(smt.negation(t, ctx), t) for t in self.before_leaves]
        self.after_literals = [(smt.negation(t, ctx), t) for t in self.after_leaves]
        self._actions: dict[semantics.Action, z3.BoolRef] = {}
        self._enc_actions: dict[semantics.Action, z3.BoolRef] = {}

    def _is(
        self, literals: Sequence[tuple[z3.BoolRef, z3.BoolRef]], state: semantics.State
    ) -> z3.BoolRef:
        assert len(state.vcpus) == self.n
        values = _flat(state.shared, state.vcpus)
        chosen = [lit[bool(v)] for lit, v in zip(literals, values, strict=True)]
        return smt.conjunction(chosen, self.allv.vocab.ctx)

    def state_is(self, state: semantics.State) -> z3.BoolRef:
        return self._is(self.before_literals, state)

    def successor_is(self, state: semantics.State) -> z3.BoolRef:
        return self._is(self.after_literals, state)

    def successor(self, model: z3.ModelRef, shape: Shape) -> semantics.State:
        values = iter(smt.truths(model, self.after_leaves))
        shared = rebuild(self.allv.g1, values)
        records = tuple(rebuild(r, values) for r in self.after)
        assert next(values, None) is None
        return semantics.State(shared, records, shape, self.system.model)

    def action_is(self, action: semantics.Action) -> z3.BoolRef:
        """The operation's step constraint on the action's gfn, with its actor and
        parameters fixed (the vCPU of a host step and ignored parameters free)."""
        found = self._actions.get(action)
        if found is not None:
            return found
        allv = self.allv
        chosen = [
            c.chosen
            for c in allv.cases
            if c.op.name == action.op and c.before.gfn == (action.gfn or 0)
        ]
        lits = [z3.Or(*chosen) if chosen else allv.vocab.logic.false]
        if action.vcpu is not None:
            lits.append(allv.actor == self.vcpus[action.vcpu])
        lits += [allv.params[p] == value for p, value in action.params]
        found = self._actions[action] = z3.And(*lits)
        return found

    def enc_action_is(self, action: semantics.Action) -> z3.BoolRef:
        """The z3 relation's action variables fixed to ``action``."""
        found = self._enc_actions.get(action)
        if found is None:
            found = self._enc_actions[action] = self.enc.action_is(self.enc_step.action, action)
        return found


_HARNESSES: dict[tuple[object, Paths, str, str, int], Harness] = {}


def harness(key: object, rule: object, paths: Paths, model: str, shape: str, n: int) -> Harness:
    k = (key, paths, model, shape, n)
    if k not in _HARNESSES:
        # the shipped model is the one the paths choose (System's default)
        declared = None if model == "shipped" else MODELS[model]
        system = System(rule, paths, SHAPES[shape], declared)  # type: ignore[arg-type]
        _HARNESSES[k] = Harness(system, n)
    return _HARNESSES[k]


def _flat(shared: Any, records: Sequence[Any]) -> list[Any]:
    """The leaves of a state: the shared ones, then each vCPU's record's in turn."""
    return [*leaves(shared), *(x for record in records for x in leaves(record))]


class Scope:
    """``solver.push()`` ... ``pop()`` as a context manager."""

    def __init__(self, solver: z3.Solver) -> None:
        self.solver = solver

    def __enter__(self) -> z3.Solver:
        self.solver.push()
        return self.solver

    def __exit__(self, *exc: object) -> None:
        self.solver.pop()


def _sat(solver: z3.Solver, *constraints: z3.BoolRef) -> bool:
    with Scope(solver):
        solver.add(*constraints)
        result = solver.check()
        assert result != z3.unknown, solver.reason_unknown()
        return bool(result == z3.sat)


# --- the comparisons ------------------------------------------------------------------------


def disagreements(h: Harness, state: semantics.State) -> Iterator[str]:
    """Every disagreement between the four interpretations on ``state``, as found."""
    system = h.system
    model = system.model
    actions = semantics.actions(h.n, state.shape, model)
    expected = {a: semantics.step(system, state, a) for a in actions}
    yield from _explicit(system, state, expected)
    yield from _encoded(h, state, expected)
    yield from _parametric(h, state, expected)


def _explicit(
    system: System, state: semantics.State, expected: dict[semantics.Action, semantics.Step | None]
) -> Iterator[str]:
    stepper = explicit.Stepper(system)
    want = [(a, s.after) for a, s in expected.items() if s is not None]
    got = [(s.action, s.after) for s in stepper.successors(state, symmetric=False)]
    if got != want:
        missing = " ".join(sorted(a.label for a, _ in set(want) - set(got))) or "-"
        extra = " ".join(sorted(a.label for a, _ in set(got) - set(want))) or "-"
        yield f"explicit: successors differ; missing: {missing}; extra: {extra}; from {state}"
        return
    orbit = {explicit.canonical(after)[0] for _, after in want}
    symmetric = {explicit.canonical(s.after)[0] for s in stepper.successors(state, True)}
    if symmetric != orbit:
        yield f"explicit: symmetric successors differ up to permutation, from {state}"


def _encoded(
    h: Harness, state: semantics.State, expected: dict[semantics.Action, semantics.Step | None]
) -> Iterator[str]:
    enc, step = h.enc, h.enc_step
    model = h.system.model
    with Scope(h.enc_solver) as solver:
        solver.add(enc.state_is(step.before, state))
        for action, want in expected.items():
            with Scope(solver):
                solver.add(h.enc_action_is(action))
                result = solver.check()
                assert result != z3.unknown, solver.reason_unknown()
                if (result == z3.sat) != (want is not None):
                    yield f"encode: {action.label} enabled in one only, from {state}"
                    continue
                if want is None:
                    continue
                witness = solver.model()
                got = enc.decode_state(witness, step.after)
                if got != want.after:
                    yield f"encode: {action.label} from {state}: {got} != {want.after}"
                    continue
                if _sat(solver, z3.Not(enc.state_is(step.after, want.after))):
                    yield f"encode: {action.label} from {state}: successor not unique"
                for prop in model.properties:
                    if prop.kind is Kind.STEP:
                        bad = witness.eval(enc.bad_step(prop, step), model_completion=True)
                        if z3.is_true(bad) != semantics.step_is_bad(prop, want):
                            yield f"encode: {prop.name} on {action.label} from {state}"
        for prop in model.properties:
            if prop.kind is Kind.STATE:
                bad = _sat(solver, enc.bad_state(prop, step.before))
                if bad != semantics.state_is_bad(prop, state):
                    yield f"encode: {prop.name} in {state}"
        # the whole relation, the action free, as BMC and Spacer use it: exactly the
        # step function's successors (no action outside the vocabulary adds one)
        afters = sorted({s.after for s in expected.values() if s is not None})
        if _sat(solver, *(z3.Not(enc.state_is(step.after, after)) for after in afters)):
            yield f"encode: the relation has a successor Python has not, from {state}"
        for after in afters:
            if not _sat(solver, enc.state_is(step.after, after)):
                yield f"encode: the relation misses {after}, from {state}"


def _parametric(
    h: Harness, state: semantics.State, expected: dict[semantics.Action, semantics.Step | None]
) -> Iterator[str]:
    allv = h.allv
    model = h.system.model
    with Scope(h.solver) as solver:
        solver.add(h.state_is(state))
        for action, step in expected.items():
            op = model.by_name(action.op)
            with Scope(solver):
                solver.add(h.action_is(action))
                result = solver.check()
                assert result != z3.unknown, solver.reason_unknown()
                if step is None:
                    if result == z3.sat:
                        yield f"parametric: {action.label} enabled, not in Python, from {state}"
                    continue
                if result != z3.sat:
                    yield f"parametric: {action.label} enabled in Python only, from {state}"
                    continue
                witness = solver.model()
                got = h.successor(witness, state.shape)
                if got != step.after:
                    yield f"parametric: {action.label} from {state}: {got} != {step.after}"
                    continue
                for prop in model.properties:
                    if prop.kind is Kind.STEP:
                        bad_step = allv.bad_step(prop, op, action.gfn or 0)
                        bad = witness.eval(bad_step, model_completion=True)
                        if z3.is_true(bad) != semantics.step_is_bad(prop, step):
                            yield f"parametric: {prop.name} on {action.label} from {state}"
                if _sat(solver, z3.Not(h.successor_is(step.after))):
                    yield f"parametric: {action.label} from {state}: successor not unique"
        # the whole step, as consecution and safety use it: the same successors
        steps = [s for s in expected.values() if s is not None]
        solver.add(allv.step)
        afters = sorted({s.after for s in steps})
        if _sat(solver, *(z3.Not(h.successor_is(after)) for after in afters)):
            yield f"parametric: the step has a successor Python has not, from {state}"
        for after in afters:
            if not _sat(solver, h.successor_is(after)):
                yield f"parametric: the step misses {after}, from {state}"
        for prop in model.properties:
            if prop.kind is not Kind.STATE:
                continue
            if _sat(solver, allv.bad_state(prop)) != semantics.state_is_bad(prop, state):
                yield f"parametric: {prop.name} in {state}"


def agree(h: Harness, state: semantics.State) -> None:
    # the state drawn is one of the full model's; read it as one of the system's
    # (an era's model has the same vocabulary, some operations as that era performs
    # them: the step function looks them up in the state's model)
    state = dataclasses.replace(state, model=h.system.model)
    # an era whose operations span steps has locals the full model lacks: drawn
    # states hold no lock there (tests/test_pml.py draws the locked ones)
    missing = len(h.system.model.locals) - len(state.vcpus[0].local if state.vcpus else ())
    if missing > 0:
        pad = (False,) * missing

        def padded(actor: Actor[bool]) -> Actor[bool]:
            return dataclasses.replace(actor, local=actor.local + pad)

        hosts = tuple(padded(a) for a in state.shared.hosts)
        state = dataclasses.replace(
            state,
            shared=dataclasses.replace(state.shared, hosts=hosts),
            vcpus=tuple(padded(a) for a in state.vcpus),
        )
    found = list(disagreements(h, state))
    assert not found, "\n".join(found)


def sized(model: str) -> st.SearchStrategy[tuple[str, int, semantics.State]]:
    """(shape name, vCPUs, an arbitrary state of that shape)."""
    return st.tuples(st.sampled_from(sorted(SHAPES)), st.sampled_from(VCPU_COUNTS)).flatmap(
        lambda sn: st.tuples(
            st.just(sn[0]), st.just(sn[1]), states(MODELS[model], SHAPES[sn[0]], sn[1])
        )
    )


AGREEMENT = settings(NO_SHRINK, max_examples=EXAMPLES, deadline=None)


@AGREEMENT
@given(
    rule_name=st.sampled_from(sorted(RULE_TEXTS)),
    paths=st.one_of(st.just(Paths()), st.sampled_from(list(ERA_PATHS.values())), paths_strategy),
    drawn=sized("shipped"),
)
def test_the_interpretations_agree_for_shipped_rules_and_every_path_policy(
    rule_name: str, paths: Paths, drawn: tuple[str, int, semantics.State]
) -> None:
    shape, n, state = drawn
    # the two-step aging (the TDP MMU before ba3a6120a4e7) is modelled with one gfn
    assume(paths.mmu is not Mmu.TDP or paths.tdp_atomic_writes or SHAPES[shape].gfns == 1)
    rule = adhoc_rule(RULE_TEXTS[rule_name], rule_name)
    agree(harness(rule_name, rule, paths, "shipped", shape, n), state)


def _agree_in_era(label: str, examples: int = EXAMPLES) -> None:
    @settings(NO_SHRINK, max_examples=examples, deadline=None)
    @given(rule_name=st.sampled_from(sorted(RULE_TEXTS)), drawn=sized("shipped"))
    def check(rule_name: str, drawn: tuple[str, int, semantics.State]) -> None:
        shape, n, state = drawn
        paths = ERA_PATHS[label]
        # the two-step aging (the TDP MMU before ba3a6120a4e7) is modelled with one gfn
        assume(paths.mmu is not Mmu.TDP or paths.tdp_atomic_writes or SHAPES[shape].gfns == 1)
        rule = adhoc_rule(RULE_TEXTS[rule_name], rule_name)
        agree(harness(rule_name, rule, paths, "shipped", shape, n), state)

    check()


def test_the_fast_eras_are_shipped_eras() -> None:
    assert set(FAST_ERAS) <= set(ERA_PATHS)
    assert len(ERA_PATHS) == sum(len(e.paths) for e in one_gfn_eras().values())
    assert len(one_gfn_eras()) == len(load_eras(SPECS)) - 2


@pytest.mark.parametrize("label", FAST_ERAS)
def test_the_interpretations_agree_in_each_era(label: str) -> None:
    """Each shipped era and MMU, its own model: the operations it has, as it performs
    them (a representative few here; every one in the slow run)."""
    _agree_in_era(label)


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(set(ERA_PATHS) - set(FAST_ERAS)))
def test_the_interpretations_agree_in_every_other_era(label: str) -> None:
    # a third of the examples: the eras share most of their operations, which the
    # representative eras and the arbitrary path policies above draw in full
    _agree_in_era(label, EXAMPLES // 3)


@AGREEMENT
@given(f=formulas, drawn=sized("shipped"))
def test_the_interpretations_agree_for_random_rules(
    f: F.Formula, drawn: tuple[str, int, semantics.State]
) -> None:
    shape, n, state = drawn
    agree(harness(f, FormulaRule(f), Paths(), "shipped", shape, n), state)


@AGREEMENT
@given(drawn=sized("locking"))
def test_the_interpretations_agree_on_locals_and_the_lock(
    drawn: tuple[str, int, semantics.State],
) -> None:
    shape, n, state = drawn
    rule = adhoc_rule(RULE_TEXTS["new"], "new")
    agree(harness("new", rule, Paths(), "locking", shape, n), state)


def test_the_locking_model_declares_its_locals_and_the_lock() -> None:
    names = [x.name for x in LOCKING.locals]
    assert names == ["saw_writable", "holds_mmu_lock_read", "holds_mmu_lock_write"]
    assert MODEL.locals == ()
    # the shipped model's vocabulary names are the ones its files have always used
    assert MODEL.vcpu_names(Shape()) == ("tlb_cached", "tlb_writable", "tlb_dirty")
    assert "writable[1]" in MODEL.shared_names(Shape(gfns=2))


def test_a_held_lock_keeps_others_out() -> None:
    """Reachable from the initial state: vCPU 0 takes the lock for write, so no one
    else may take it, in any interpretation (the agreement tests compare them)."""
    system = System(adhoc_rule(RULE_TEXTS["new"]), model=LOCKING)
    state = semantics.initial_states(2, model=LOCKING)[1]
    fault = semantics.Action("page_fault", 0, (("host_writable", True),))
    state = semantics.step(system, state, fault).after  # type: ignore[union-attr]
    held = semantics.step(system, state, semantics.Action("section_begin", 0)).after  # type: ignore[union-attr]
    for blocked in [
        semantics.Action("section_begin", 1),
        semantics.Action("zap"),
        semantics.Action("read_begin"),
        semantics.Action("page_fault", 1, (("host_writable", True),)),
    ]:
        assert semantics.step(system, held, blocked) is None, blocked.label
    # lockless steps go on, and the holder finishes its section
    assert semantics.step(system, held, semantics.Action("guest_access", 1)) is not None
    done = semantics.step(system, held, semantics.Action("section_end", 0))
    assert done is not None and not done.after.shared.sptes[0].writable
    agree(Harness(system, 2), held)


# --- planted bugs ---------------------------------------------------------------------------


def _planted_states(model: Model, shape: Shape, n: int, count: int = 40) -> list[semantics.State]:
    """A fixed sample of arbitrary states (seeded), the initial ones first."""
    rng = random.Random(n)
    found = list(semantics.initial_states(n, shape, model))
    k = size(model, shape, n)
    while len(found) < count:
        found.append(make_state(model, shape, n, [rng.random() < 0.5 for _ in range(k)]))
    return found


def first_disagreement(system: System, n: int) -> tuple[int, semantics.State, str] | None:
    h = Harness(system, n)
    for i, state in enumerate(_planted_states(system.model, system.shape, n)):
        for found in disagreements(h, state):
            return i + 1, state, found
    return None


Apply = Callable[..., Outcome[Any]]


def planted_apply(real: Apply, op_name: str, change: str) -> Apply:
    """``apply`` with ``op_name`` changed: ``drop`` never enables it, ``flush`` inverts
    its flush, ``keep_writable`` leaves the target SPTE's W bit as it was."""

    def planted(logic: Any, rule: Any, paths: Any, op: Any, before: Any, *rest: Any) -> Any:
        out = real(logic, rule, paths, op, before, *rest)
        if op.name != op_name:
            return out
        if change == "drop":
            return dataclasses.replace(out, enabled=logic.const(False))
        if change == "flush":
            return dataclasses.replace(out, flush=logic.not_(out.flush))
        assert change == "keep_writable"
        window = out.window.with_spte(writable=before.spte.writable)
        return dataclasses.replace(out, window=window)

    return planted


def flipped_vcpu_after(real: Callable[..., Any]) -> Callable[..., Any]:
    """The frame with the actor's new record given to every other vCPU instead."""

    def planted(logic: Any, flush: Any, is_actor: Any, actor: Any, old: Any) -> Any:
        return real(logic, flush, logic.not_(is_actor), actor, old)

    return planted


def blind_blocks(logic: Any, mode: Any, record: Any, locals_: Any) -> Any:
    """Nobody ever holds mmu_lock."""
    return logic.const(False)


PLANTED: Sequence[tuple[str, str, str, str, str, int]] = (
    # (interpretation, operation, change, model, shape, vCPUs)
    ("semantics", "aging", "drop", "shipped", "1gfn", 1),
    ("semantics", "write_protect", "flush", "shipped", "1gfn", 3),
    ("explicit", "zap", "drop", "shipped", "1gfn", 1),
    ("explicit", "page_fault", "keep_writable", "shipped", "2gfns", 2),
    ("encode", "aging", "drop", "shipped", "1gfn", 1),
    ("encode", "prefetch", "keep_writable", "shipped", "2gfns-1spte", 2),
    ("parametric", "aging", "drop", "shipped", "1gfn", 1),
    ("parametric", "harvest", "flush", "shipped", "1gfn", 1),
    ("parametric", "sync_spte", "keep_writable", "shipped", "2gfns", 1),
    ("parametric", "frame", "flip", "shipped", "1gfn", 2),
    ("encode", "frame", "flip", "shipped", "1gfn", 2),
    ("semantics", "lock", "blind", "locking", "1gfn", 2),
    ("encode", "lock", "blind", "locking", "1gfn", 2),
    ("parametric", "lock", "blind", "locking", "1gfn", 2),
)


@pytest.mark.parametrize(("where", "op_name", "change", "model", "shape", "n"), PLANTED)
def test_a_planted_bug_is_caught(
    where: str,
    op_name: str,
    change: str,
    model: str,
    shape: str,
    n: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = {
        "parametric": parametric,
        "encode": encode,
        "semantics": semantics,
        "explicit": explicit,
    }[where]
    if change == "flip":
        monkeypatch.setattr(module, "vcpu_after", flipped_vcpu_after(module.vcpu_after))
    elif change == "blind":
        monkeypatch.setattr(module, "blocks", blind_blocks)
    else:
        monkeypatch.setattr(module, "apply", planted_apply(module.apply, op_name, change))
    system = System(adhoc_rule(RULE_TEXTS["new"], "new"), Paths(), SHAPES[shape], MODELS[model])
    found = first_disagreement(system, n)
    assert found is not None, f"planted bug in {where} ({op_name}: {change}) not caught"
    count, state, message = found
    # the disagreement is reported by the planted interpretation, or (a plant in the
    # step function) by one compared with it
    assert message.startswith(where) or where == "semantics", message
    if change not in ("flip", "blind"):
        assert f" {op_name}" in message, message
    # the plant, and nothing else, makes that state disagree
    monkeypatch.undo()
    assert not list(disagreements(Harness(system, n), state))
    print(f"\nplanted {where} {op_name} {change}: caught at state {count}: {message[:120]}")


def test_a_trace_shows_who_holds_the_lock_and_each_vcpus_locals() -> None:
    """The views read the model from the trace's states: its lock holders and its
    actors' locals get columns of their own."""
    from checker.engines.trace import Trace
    from checker.model import PROPERTY_BY_NAME
    from checker.traces import view

    system = System(adhoc_rule(RULE_TEXTS["new"]), model=LOCKING)
    state = semantics.initial_states(2, model=LOCKING)[1]
    steps = []
    for action in [
        semantics.Action("page_fault", 0, (("host_writable", True),)),
        semantics.Action("section_begin", 0),
        semantics.Action("section_end", 0),
    ]:
        step = semantics.step(system, state, action)
        assert step is not None, action.label
        steps.append(step)
        state = step.after
    trace = Trace("new", PROPERTY_BY_NAME["precision"], Paths(), steps[0].before, tuple(steps))
    table = view.step_table(trace, RULE_TEXTS["new"])
    assert [c.header for c in table.columns if c.key in ("lock", "local0")] == [
        "mmu_lock",
        "local0",
    ]
    cells = [view.paint_cell(row.cells["lock"], view.plain) for row in table.rows]
    assert cells == ["free", "free", "free→vcpu0 write", "vcpu0 write→free"]
    held = dict(view.state_items(steps[1].after))
    assert held["mmu_lock"] == "vcpu0 write"
    assert "saw_writable" in held["local0"] and "holds_mmu_lock_write" in held["local0"]
