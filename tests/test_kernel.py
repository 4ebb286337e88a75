"""Reading the flush rule out of kernel trees of each era (fixtures in their shape)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checker import cexpr
from checker.cexpr import Origin
from checker.errors import InputError
from checker.kernel import KernelError, extract, rule_from_kernel, to_c

from .test_cexpr import equivalent

KERNELS = Path(__file__).parent / "fixtures" / "kernels"


def meaning(text: str) -> cexpr.Formula:
    return cexpr.parse(text, Origin("--expr"))


OLD_AD = (
    "(is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte))"
    " || (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))"
    " || (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte))"
)


@pytest.mark.parametrize(
    ("era", "file", "function", "lines", "rule"),
    [
        (
            "v3.x",
            "arch/x86/kvm/mmu.c",
            "mmu_spte_update",
            [43],
            "is_writable_pte(old_spte) && !is_writable_pte(new_spte)",
        ),
        (
            "v4.19",
            "arch/x86/kvm/mmu.c",
            "mmu_spte_update",
            [30, 38, 43],
            OLD_AD.replace("is_mmu_writable_spte", "spte_can_locklessly_be_made_writable"),
        ),
        ("v6.12", "arch/x86/kvm/mmu/mmu.c", "mmu_spte_update", [31, 39, 44], OLD_AD),
        (
            "v6.13",
            "arch/x86/kvm/mmu/spte.h",
            "leaf_spte_change_needs_tlb_flush",
            [23],
            "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
        ),
    ],
)
def test_each_era(era: str, file: str, function: str, lines: list[int], rule: str) -> None:
    found = extract(KERNELS / era)
    assert found.file == KERNELS / era / file and found.function == function
    assert [c.line for c in found.clauses] == lines
    assert found.from_clauses and found.expression == rule
    # the symbolic result agrees with the clauses wherever the rule is consulted
    present = meaning("is_shadow_present_pte(old_spte)")
    assert equivalent(cexpr.F.and_(present, found.formula), cexpr.F.and_(present, meaning(rule)))


def test_a_file_can_be_given_directly() -> None:
    tree = KERNELS / "v6.13" / "arch/x86/kvm/mmu/spte.h"
    assert extract(tree).expression == extract(KERNELS / "v6.13").expression
    # v6.13's mmu.c delegates to the helper, which it does not define: not a rule
    with pytest.raises(KernelError, match=r"mmu.c:5: mmu_spte_update\(\) asks leaf_spte_change"):
        extract(KERNELS / "v6.13" / "arch/x86/kvm/mmu/mmu.c")


def test_the_rule_points_at_its_first_clause() -> None:
    rule = rule_from_kernel(KERNELS / "v4.19")
    assert rule.path == KERNELS / "v4.19" / "arch/x86/kvm/mmu.c" and rule.line == 30
    assert rule.selector == ("--kernel", str(KERNELS / "v4.19"))


def write(tmp_path: Path, body: str, name: str = "arch/x86/kvm/mmu/mmu.c") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"/* fixture */\nstatic bool mmu_spte_update(u64 *sptep, u64 new_spte)\n{{\n{body}\n}}\n"
    )
    return tmp_path


def test_flush_or_equal_and_else_branches(tmp_path: Path) -> None:
    body = """\tbool flush = false;
\tu64 old_spte = *sptep;
\tif (is_writable_pte(old_spte)) {
\t\tif (!is_writable_pte(new_spte))
\t\t\tflush = true;
\t} else
\t\tflush |= is_mmu_writable_spte(old_spte) &&
\t\t\t !is_mmu_writable_spte(new_spte);
\treturn flush;"""
    found = extract(write(tmp_path, body))
    expected = meaning(
        "is_writable_pte(old_spte) && !is_writable_pte(new_spte) || !is_writable_pte(old_spte)"
        " && is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"
    )
    assert equivalent(found.formula, expected)
    assert [c.text for c in found.clauses] == [
        "is_writable_pte(old_spte) && !is_writable_pte(new_spte)",
        "!(is_writable_pte(old_spte)) && is_mmu_writable_spte(old_spte) &&"
        " !is_mmu_writable_spte(new_spte)",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "\tbool flush = false;\n\tif (is_writeable_pte(old_spte))\n"
            "\t\tflush = true;\n\treturn flush;",
            "mmu.c:5:6: unknown identifier 'is_writeable_pte'; did you mean 'is_writable_pte'?",
        ),
        (
            "\tbool flush = false;\n\tfor (;;)\n\t\tflush = true;\n\treturn flush;",
            "mmu.c:5: unsupported control flow (For)",
        ),
        (
            "\tbool flush = false;\n\tif (is_writable_pte(old_spte))\n\t\treturn true;",
            "mmu_spte_update() can end without returning",
        ),
        (
            "\tbool flush = some_helper(sptep);\n\treturn flush;",
            "'flush' was assigned something the checker cannot follow",
        ),
        ("\treturn old_spte + ;", "mmu_spte_update() at"),
    ],
)
def test_what_it_cannot_read_is_an_error_with_a_place(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        extract(write(tmp_path, body))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="not a kernel tree"):
        extract(tmp_path)
    with pytest.raises(KernelError, match="no such file or directory"):
        extract(tmp_path / "nowhere")
    (tmp_path / "other.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(KernelError, match="no flush rule found"):
        extract(tmp_path / "other.c")


def test_prototypes_and_calls_are_not_the_definition(tmp_path: Path) -> None:
    path = tmp_path / "mmu.c"
    path.write_text(
        "static bool mmu_spte_update(u64 *sptep, u64 new_spte);\n"
        "void caller(void) { if (mmu_spte_update(p, v)) flush(); }\n"
        "#define X(a) \\\n   mmu_spte_update(a, 0)\n"
        "static bool mmu_spte_update(u64 *sptep, u64 new_spte)\n{\n"
        "\tu64 old_spte = *sptep;\n\treturn is_writable_pte(old_spte); /* } */\n}\n"
    )
    found = extract(path)
    assert found.line == 5 and found.expression == "is_writable_pte(old_spte)"


@pytest.mark.parametrize(
    "text",
    [
        OLD_AD,
        "!(is_writable_pte(old_spte) || is_mmu_writable_spte(new_spte))"
        " && spte_ad_enabled(old_spte)",
        "is_access_track_spte(new_spte)"
        " && !(is_dirty_spte(old_spte) && is_accessed_spte(new_spte))",
        "true",
    ],
)
def test_to_c_reads_back_as_the_same_rule(text: str) -> None:
    # to_c() is what `extract` prints when the rule is spread over branches
    formula = meaning(text)
    assert equivalent(meaning(to_c(formula)), formula)


def test_a_device_or_fifo_is_not_a_regular_file_and_not_opened(
    tmp_path: Path, deadline: None
) -> None:
    with pytest.raises(KernelError, match=r"^/dev/null: not a regular file \(a character device\)"):
        extract(Path("/dev/null"))
    fifo = tmp_path / "spte.h"
    os.mkfifo(fifo)
    with pytest.raises(KernelError, match=r"spte.h: not a regular file \(a FIFO\)"):
        extract(fifo)
