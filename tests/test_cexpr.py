"""C flush conditions: what they mean in the model, and how bad ones are rejected."""

from __future__ import annotations

import pytest
import z3

from checker import cexpr
from checker import formula as F
from checker.cexpr import CExprError, Origin
from checker.model import SPTE_FIELDS
from checker.smt import Symbolic

OLD = {f: F.Bit("old", f) for f in SPTE_FIELDS}
NEW = {f: F.Bit("new", f) for f in SPTE_FIELDS}
AD = F.AdEnabled()


def parse(text: str, layout: str = "x86") -> F.Formula:
    return cexpr.parse(text, Origin("--expr"), layout)  # type: ignore[arg-type]


def equivalent(a: F.Formula, b: F.Formula) -> bool:
    """a <=> b for every old/new SPTE and A/D setting (decided by z3)."""
    logic = Symbolic()
    old = {f: z3.Bool(f"old_{f}") for f in SPTE_FIELDS}
    new = {f: z3.Bool(f"new_{f}") for f in SPTE_FIELDS}
    from checker.model import Spte

    args = (logic, Spte(**old), Spte(**new), z3.Bool("ad"))
    solver = z3.Solver()
    solver.add(F.evaluate(a, *args) != F.evaluate(b, *args))
    return solver.check() == z3.unsat


@pytest.mark.parametrize(
    ("text", "meaning"),
    [
        # the three shipped rules
        (
            "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
            F.and_(OLD["mmu_writable"], F.not_(NEW["writable"])),
        ),
        (
            "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
            F.and_(OLD["mmu_writable"], F.not_(NEW["mmu_writable"])),
        ),
        (
            "is_writable_pte(old_spte) && !is_writable_pte(new_spte)",
            F.and_(OLD["writable"], F.not_(NEW["writable"])),
        ),
        # helpers
        ("is_shadow_present_pte(new_spte)", NEW["present"]),
        (
            "is_accessed_spte(old_spte)",
            F.or_(F.and_(AD, OLD["accessed"]), F.and_(F.not_(AD), F.not_(OLD["access_tracked"]))),
        ),
        (
            "is_dirty_spte(new_spte)",
            F.or_(F.and_(AD, NEW["dirty"]), F.and_(F.not_(AD), NEW["writable"])),
        ),
        ("is_access_track_spte(old_spte)", F.and_(F.not_(AD), OLD["access_tracked"])),
        ("spte_ad_enabled(old_spte)", AD),
        (
            "spte_can_locklessly_be_made_writable(old_spte)",
            F.and_(OLD["host_writable"], OLD["mmu_writable"]),
        ),
        (
            "spte_is_locklessly_modifiable(new_spte)",
            F.and_(NEW["host_writable"], NEW["mmu_writable"]),
        ),
        # masks
        (
            "(old_spte & shadow_mmu_writable_mask) && (new_spte & PT_WRITABLE_MASK) == 0",
            F.and_(OLD["mmu_writable"], F.not_(NEW["writable"])),
        ),
        ("old_spte & shadow_host_writable_mask", OLD["host_writable"]),
        ("(old_spte & shadow_accessed_mask) != 0", F.and_(AD, OLD["accessed"])),
        ("new_spte & shadow_dirty_mask", F.and_(AD, NEW["dirty"])),
        (
            "old_spte & SPTE_HOST_WRITEABLE && old_spte & SPTE_MMU_WRITEABLE",
            F.and_(OLD["host_writable"], OLD["mmu_writable"]),
        ),
        (
            "(old_spte & (SPTE_HOST_WRITEABLE | SPTE_MMU_WRITEABLE)) == "
            "(SPTE_HOST_WRITEABLE | SPTE_MMU_WRITEABLE)",
            F.and_(OLD["host_writable"], OLD["mmu_writable"]),
        ),
        (
            "old_spte & BIT_ULL(10) && !(new_spte & BIT_ULL(1))",
            F.and_(OLD["mmu_writable"], F.not_(NEW["writable"])),
        ),
        ("old_spte & (1ULL << 11)", OLD["present"]),
        ("!!(new_spte & BIT_ULL(9))", NEW["host_writable"]),
        (
            "((old_spte ^ new_spte) & PT_WRITABLE_MASK) != 0",
            F.not_(F.iff(OLD["writable"], NEW["writable"])),
        ),
        # operators, constants, comments, older helpers
        ("true", F.TRUE),
        ("false || (is_writable_pte(old_spte))", OLD["writable"]),
        ("is_writable_pte(old_spte) == false", F.not_(OLD["writable"])),
        (
            "is_writable_pte(old_spte) != is_writable_pte(new_spte)",
            F.not_(F.iff(OLD["writable"], NEW["writable"])),
        ),
        (
            "/* why */ is_writable_pte(old_spte) // and\n && unlikely(!is_writable_pte(new_spte))",
            F.and_(OLD["writable"], F.not_(NEW["writable"])),
        ),
        (
            "spte_is_bit_cleared(old_spte, new_spte, shadow_accessed_mask)",
            F.and_(AD, OLD["accessed"], F.not_(F.and_(AD, NEW["accessed"]))),
        ),
        (
            "spte_is_bit_changed(old_spte, new_spte, PT_WRITABLE_MASK)",
            F.not_(F.iff(OLD["writable"], NEW["writable"])),
        ),
        ("(u64)old_spte & PT_WRITABLE_MASK", OLD["writable"]),
    ],
)
def test_meaning(text: str, meaning: F.Formula) -> None:
    assert equivalent(parse(text), meaning), F.render(parse(text))


def test_ept_layout_reads_bit_positions_of_ept() -> None:
    assert equivalent(parse("old_spte & BIT_ULL(58)", "ept"), OLD["mmu_writable"])
    assert equivalent(parse("old_spte & BIT_ULL(9)", "ept"), OLD["dirty"])
    assert equivalent(parse("old_spte & BIT_ULL(9)", "x86"), OLD["host_writable"])
    # names mean the same bit whatever the layout
    assert equivalent(parse("old_spte & shadow_mmu_writable_mask", "ept"), OLD["mmu_writable"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "is_mmu_writeable_spte(old_spte)",
            "--expr:1:1: unknown identifier 'is_mmu_writeable_spte'; "
            "did you mean 'is_mmu_writable_spte'?",
        ),
        ("is_writable_pte(old)", "--expr:1:17: unknown identifier 'old'; did you mean 'old_spte'?"),
        (
            "is_writable_pte(old_spte) && shadow_mmu_writeable_mask & new_spte",
            "--expr:1:30: unknown identifier 'shadow_mmu_writeable_mask'; did you mean "
            "'shadow_mmu_writable_mask'?",
        ),
        ("is_mmu_writable_spte(old_spte) &&", "--expr:1:34: the C expression is incomplete"),
        ("(is_writable_pte(old_spte)", "--expr:1:27: missing ')'"),
        ("is_writable_pte(old_spte))", "--expr:1:27: unbalanced ')'"),
        ("a && && b", "--expr:1:6: syntax error: expected an expression"),
        ("is_writable_pte(old_spte) ;", "--expr:1:27: syntax error before ';'"),
        ("", "--expr:1:1: the flush condition is empty"),
        ("/* only a comment */", "--expr:1:1: the flush condition is empty"),
        ("old_spte & BIT_ULL(3)", "depends on SPTE bits the model does not have (bit 3)"),
        ("old_spte == new_spte", "depends on SPTE bits the model does not have"),
        ("old_spte + 1", "unsupported construct in a flush condition: operator '+'"),
        ("is_writable_pte(old_spte, new_spte)", "'is_writable_pte' takes 1 argument(s), got 2"),
        (
            "is_writable_pte(old_spte & PT_WRITABLE_MASK)",
            "'is_writable_pte' takes old_spte or new_spte",
        ),
        ("is_writable_pte", "'is_writable_pte' is a function: call it"),
        ("old_spte(1)", "'old_spte' is not a function"),
        ("BIT_ULL(64) & old_spte", "BIT_ULL(64) is outside a 64-bit SPTE"),
    ],
)
def test_errors_name_the_problem_and_position(text: str, message: str) -> None:
    with pytest.raises(CExprError) as info:
        parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_positions_map_into_the_source_file() -> None:
    origin = Origin("specs/rules/x.toml", line=7, column=15)
    with pytest.raises(CExprError, match=r"^specs/rules/x.toml:7:31: unknown identifier 'old'"):
        cexpr.parse("is_writable_pte(old)", origin)
    with pytest.raises(CExprError, match=r"^specs/rules/x.toml:8:4: unknown identifier 'nwe_spte'"):
        cexpr.parse("is_writable_pte(old_spte) &&\n  !nwe_spte", origin)


def test_strip_comments_keeps_positions() -> None:
    text = "a /* x\ny */ b // z\nc"
    stripped = cexpr.strip_comments(text)
    assert len(stripped) == len(text) and stripped.count("\n") == text.count("\n")
    assert stripped.split() == ["a", "b", "c"]


def test_explain_gives_each_test_its_value_on_the_update() -> None:
    from checker.model import Spte

    old = Spte(True, False, True, True, False, False, True)  # P MW HW AT
    new = Spte(True, False, False, True, False, False, True)  # P HW AT
    decision, terms = cexpr.explain(
        "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)", old, new, False
    )
    assert decision is True
    assert [(t.text, t.value) for t in terms] == [
        ("is_mmu_writable_spte(old_spte)", True),
        ("is_writable_pte(new_spte)", False),
    ]
    decision, terms = cexpr.explain(
        "/* c */ (old_spte & shadow_mmu_writable_mask)"
        " && likely((new_spte & PT_WRITABLE_MASK) == 0)",
        old,
        new,
        False,
    )
    assert decision is True
    assert [t.text for t in terms] == [
        "old_spte & shadow_mmu_writable_mask",
        "(new_spte & PT_WRITABLE_MASK) == 0",
    ]
