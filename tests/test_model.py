"""The declaration itself: what an operation says it writes is all it writes, a step
on one gfn leaves the others alone, properties find operations by their traits, and
a declaration that cannot be interpreted is refused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines import explicit
from checker.model import (
    MODEL,
    PROPERTY_BY_NAME,
    Flush,
    Model,
    Part,
    Paths,
    Reach,
    Shape,
    System,
    Trait,
    apply,
)
from checker.model.logic import CONCRETE
from checker.model.vocabulary import leaves, rebuild
from checker.rules.specs import adhoc_rule

from .test_encode import RULE_TEXTS, paths_strategy

SHAPES = (Shape(), Shape(gfns=2), Shape(gfns=3, spte_of=(0, 0, 1)), Shape(gfns=2, huge=True))


@st.composite
def windows(draw: st.DrawFn) -> tuple[Shape, object, object, int]:
    shape = draw(st.sampled_from(SHAPES))
    shared_template = MODEL.initial_shared(CONCRETE, shape, False)
    actor_template = MODEL.initial_actor(CONCRETE, shape)
    n = sum(1 for _ in leaves(shared_template)) + sum(1 for _ in leaves(actor_template))
    bits = iter(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    shared = rebuild(shared_template, bits)
    actor = rebuild(actor_template, bits)
    gfn = draw(st.integers(0, shape.gfns - 1))
    return shape, shared, actor, gfn


@settings(max_examples=300, deadline=None)
@given(drawn=windows(), paths=st.one_of(st.just(Paths()), paths_strategy), params=st.booleans())
def test_an_operation_writes_only_what_it_declares(
    drawn: tuple[Shape, object, object, int], paths: Paths, params: bool
) -> None:
    shape, shared, actor, gfn = drawn
    rule = adhoc_rule(RULE_TEXTS["new"], "new")
    for op in MODEL.operations:
        target = gfn if op.reach is Reach.GFN else 0
        record = actor if op.by_vcpu else shared.hosts[0]  # type: ignore[attr-defined]
        before = MODEL.window(CONCRETE, shape, shared, record, target)  # type: ignore[arg-type]
        values = {p: params for p in op.params}
        after = apply(CONCRETE, rule, paths, op, before, values).window
        changed = set()
        b, a = before.shared, after.shared
        if b.sptes != a.sptes:
            changed.add(Part.SPTE)
            big = shape.huge_spte
            split = big is not None and b.sptes[big].present and not a.sptes[big].present
            if op.reach is Reach.GFN and not split:
                # a step on one gfn writes the SPTE that maps it: its own, or the 2M
                # one over it (or, splitting the 2M SPTE, every 4K SPTE below it)
                others = [i for i in range(shape.sptes) if i not in (before.spte_index, big)]
                assert all(b.sptes[i] == a.sptes[i] for i in others), op.name
        if b.slot != a.slot:
            changed.add(Part.SLOT)
        if b.frames != a.frames:
            changed.add(Part.FRAME)
            if op.reach is Reach.GFN:
                assert all(b.frames[g] == a.frames[g] for g in range(shape.gfns) if g != target)
        if before.actor.tlbs != after.actor.tlbs:
            changed.add(Part.TLB)
            assert all(
                before.actor.tlbs[g] == after.actor.tlbs[g]
                for g in range(len(before.actor.tlbs))
                if g != target
            ), op.name
        if before.actor.local != after.actor.local:
            changed.add(Part.LOCAL)
        assert b.hosts == a.hosts, op.name
        assert changed <= op.writes, f"{op.name} writes {changed - op.writes} undeclared"


def test_every_declared_part_is_written_somewhere() -> None:
    """A declaration that over-claims is caught too: each part an operation declares
    is changed by it from some state (a seeded sample of arbitrary windows)."""
    import random

    from checker.rules.specs import load_eras

    from .conftest import SPECS

    rng = random.Random(0)
    rule = adhoc_rule(RULE_TEXTS["new"], "new")
    # every era's paths: a part some era's variant of the step writes counts
    eras = [p for era in load_eras(SPECS).values() for p in era.paths.values()]
    written: dict[str, set[Part]] = {op.name: set() for op in MODEL.operations}
    for _ in range(400):
        shape = rng.choice(SHAPES)
        shared_template = MODEL.initial_shared(CONCRETE, shape, False)
        actor_template = MODEL.initial_actor(CONCRETE, shape)
        shared = rebuild(shared_template, iter(lambda: rng.random() < 0.5, None))
        actor = rebuild(actor_template, iter(lambda: rng.random() < 0.5, None))
        for op in MODEL.operations:
            gfn = rng.randrange(shape.gfns) if op.reach is Reach.GFN else 0
            record = actor if op.by_vcpu else shared.hosts[0]
            before = MODEL.window(CONCRETE, shape, shared, record, gfn)
            params = {p: rng.random() < 0.5 for p in op.params}
            after = apply(CONCRETE, rule, rng.choice(eras), op, before, params).window
            pairs = [
                (Part.SPTE, before.shared.sptes, after.shared.sptes),
                (Part.SLOT, before.shared.slot, after.shared.slot),
                (Part.FRAME, before.shared.frames, after.shared.frames),
                (Part.TLB, before.actor.tlbs, after.actor.tlbs),
            ]
            written[op.name] |= {part for part, b, a in pairs if b != a}
    for op in MODEL.operations:
        assert written[op.name] == op.writes - {Part.LOCAL}, op.name


def test_properties_find_operations_by_trait_not_name() -> None:
    """Renaming the guest store leaves legacy's write-tracking violation in place."""
    renamed = tuple(
        dataclasses.replace(op, name="store") if Trait.GUEST_STORE in op.traits else op
        for op in MODEL.operations
    )
    model = Model(renamed, MODEL.properties)
    system = System(adhoc_rule(RULE_TEXTS["legacy"], "legacy"), model=model)
    prop = PROPERTY_BY_NAME["write_tracking"]
    result = explicit.check_all(system, [prop], 1)[prop.name]
    assert result.violated and result.actions[-1].op == "store"
    # and without the trait, nothing is a guest store: the property holds vacuously,
    # which is why the trait, not the name, is what properties read
    untraited = tuple(dataclasses.replace(op, traits=frozenset()) for op in MODEL.operations)
    vacuous = System(system.rule, model=Model(untraited, MODEL.properties))
    assert not explicit.check_all(vacuous, [prop], 1)[prop.name].violated


def test_a_declaration_that_cannot_be_interpreted_is_refused() -> None:
    op = MODEL.by_name("page_fault")
    # (a slot-wide step may ask the rule too, about each SPTE it writes: no longer
    # refused) a flush owed after unlock names the slot field that records it
    with pytest.raises(ValueError, match="LATER flush, and only it"):
        dataclasses.replace(op, flush=Flush.LATER)
    with pytest.raises(ValueError, match="LATER flush, and only it"):
        dataclasses.replace(op, pending="enable_flush_pending")
    with pytest.raises(ValueError, match="lockless step cannot hold"):
        from checker.model import Hold, LockMode

        dataclasses.replace(op, lock=LockMode.NONE, hold=Hold.ACQUIRE)
    with pytest.raises(ValueError, match="same name"):
        Model((op, op), MODEL.properties)
    with pytest.raises(ValueError, match="undeclared parameters"):
        Model((dataclasses.replace(op, params=("colour",)),), MODEL.properties)
    assert op.flush is Flush.RULE


def test_a_shape_must_map_every_gfn_onto_sptes() -> None:
    with pytest.raises(ValueError, match="does not map"):
        Shape(gfns=2, spte_of=(0, 2))
    with pytest.raises(ValueError, match="at least one gfn"):
        Shape(gfns=0)
    assert Shape(gfns=2, spte_of=(0, 0)).sptes == 1
