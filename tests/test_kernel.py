"""Reading the flush rule out of kernel trees of each era (fixtures in their shape)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checker.errors import InputError
from checker.rules import cexpr
from checker.rules.cexpr import Origin
from checker.rules.kernel import KernelError, extract, rule_from_kernel, to_c

from .test_cexpr import equivalent, time_limit

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


# --- hostile trees: deep or huge functions, #ifdef, odd paths ----------------------------

HEAD = "\tbool flush = false;\n\tu64 old_spte = *sptep;\n"
CLAUSE = "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)"


def test_hundreds_of_clauses_are_read(tmp_path: Path) -> None:
    body = HEAD + f"\tif ({CLAUSE})\n\t\tflush = true;\n" * 400
    body += "\tif (" + " && ".join(["is_writable_pte(old_spte)"] * 500) + ")\n\t\tflush = true;\n"
    with time_limit(60):
        found = extract(write(tmp_path, body + "\treturn flush;"))
    assert len(found.clauses) == 401 and found.from_clauses
    assert equivalent(found.formula, meaning(f"{CLAUSE} || is_writable_pte(old_spte)"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            HEAD + "\tif (" + "(" * 120 + "true" + ")" * 120 + ")\n\t\tflush = true;",
            "mmu.c:6:104: mmu_spte_update() nests brackets more than 100 deep, the checker's limit",
        ),
        (
            HEAD + f"\tif ({CLAUSE})\n\t\treturn true;\n" * 400,
            "mmu.c:2: the rule's formula has more than 200000 terms (each early return or "
            "else-if repeats the conditions before it), the checker's limit",
        ),
        (
            "\tbool flush = is_writable_pte(new_spte);\n\tu64 old_spte = *sptep;\n"
            + "\tif (is_dirty_spte(new_spte))\n\t\tflush = flush && is_writable_pte(old_spte);\n"
            * 60,
            "mmu.c:2: the rule's formula has more than 200000 terms",
        ),
    ],
)
def test_deep_or_huge_functions_are_refused_naming_the_limit(
    tmp_path: Path, body: str, message: str
) -> None:
    with time_limit(60), pytest.raises(InputError) as info:
        extract(write(tmp_path, body + "\treturn flush;"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_finding_the_function_is_linear(tmp_path: Path) -> None:
    # 30,000 calls left unclosed: each used to scan the rest of the file (minutes)
    path = tmp_path / "mmu.c"
    path.write_text("\tx = mmu_spte_update(sptep, new_spte\n" * 30_000)
    with time_limit(60), pytest.raises(KernelError, match="no flush rule found"):
        extract(path)
    path.write_text("mmu_spte_update(a) {" * 30_000 + "/* " * 30_000)
    with time_limit(60), pytest.raises(KernelError, match="no flush rule found"):
        extract(path)


IFDEF_FIRST_BRANCH_WINS = (
    HEAD + "#ifdef CONFIG_FOO\n\treturn false;\n#else\n\treturn is_writable_pte(old_spte);\n#endif"
)


@pytest.mark.parametrize(
    ("body", "line", "directive"),
    [
        # read in sequence, the first branch won: 'rule: false'
        (IFDEF_FIRST_BRANCH_WINS, 6, "ifdef"),
        (HEAD + "#if IS_ENABLED(CONFIG_FOO)\n\tflush = true;\n#endif\n\treturn flush;", 6, "if"),
        (
            HEAD + "\tif (is_writable_pte(old_spte))\n#ifndef CONFIG_FOO\n\t\tflush = true;\n"
            "#else\n\t\tWARN_ON(1);\n#endif\n\treturn flush;",
            7,
            "ifndef",
        ),
        # an #else whose #if is before the function
        (HEAD + "\treturn flush;\n#else\n\treturn true;\n#endif", 7, "else"),
    ],
)
def test_conditional_compilation_in_the_function_is_refused(
    tmp_path: Path, body: str, line: int, directive: str
) -> None:
    with pytest.raises(KernelError) as info:
        extract(write(tmp_path, body))
    assert str(info.value).startswith(
        f"{tmp_path / 'arch/x86/kvm/mmu/mmu.c'}:{line}: #{directive} inside mmu_spte_update()"
    )
    assert "does not guess which branch your kernel builds" in str(info.value)


def test_conditional_compilation_elsewhere_is_fine(tmp_path: Path) -> None:
    # around the function, and inside it around code the rule does not depend on
    path = write(
        tmp_path,
        HEAD + "#ifdef CONFIG_KVM_PROVE_MMU\n\tWARN_ON(is_writable_pte(new_spte));\n#else\n"
        "\tkvm_mmu_audit(sptep);\n#endif\n\treturn is_writable_pte(old_spte);",
    )
    file = path / "arch/x86/kvm/mmu/mmu.c"
    file.write_text("#ifdef CONFIG_X86_64\nint a;\n#else\nint b;\n#endif\n" + file.read_text())
    assert extract(path).expression == "is_writable_pte(old_spte)"


@pytest.mark.parametrize("name", ['quo"te', "a space", "back\\slash", "new\nline"])
def test_odd_characters_in_the_path_are_not_blamed_on_the_c(tmp_path: Path, name: str) -> None:
    good = write(tmp_path / name, HEAD + f"\treturn {CLAUSE};")
    assert extract(good).expression == CLAUSE
    bad = write(tmp_path / f"{name}2", HEAD + "\treturn is_writabl_pte(old_spte);")
    with pytest.raises(InputError) as info:
        extract(bad)
    shown = str(bad / "arch/x86/kvm/mmu/mmu.c").replace("\n", "\\n")
    assert str(info.value).startswith(f"{shown}:6:9: unknown identifier 'is_writabl_pte'")
    assert "\n" not in str(info.value)


def test_the_text_parsed_is_exactly_the_function(tmp_path: Path) -> None:
    # the braces in strings make the textual match run on into the next function:
    # parsed as is, the first definition's body would be read without complaint
    path = tmp_path / "mmu.c"
    path.write_text(
        "static bool mmu_spte_update(u64 *sptep, u64 new_spte)\n"
        '{\n\tchar *s = "{";\n\treturn true;\n}\n'
        'static bool other(void)\n{\n\tchar *t = "}";\n\treturn false;\n}\n'
    )
    with pytest.raises(KernelError, match=r"mmu.c:1: mmu_spte_update\(\) is not one C function"):
        extract(path)


# --- what could change the rule is refused, never guessed ----------------------------------

V3 = KERNELS / "v3.x" / "arch/x86/kvm/mmu.c"
V3_RULE = "\tif (is_writable_pte(old_spte) && !is_writable_pte(new_spte))\n\t\tret = true;"


def v3_tree(tmp_path: Path, rule: str = V3_RULE, around: tuple[str, str] = ("", "")) -> Path:
    """The v3.x fixture with its flush clause replaced by ``rule``, and its function
    wrapped in ``around`` (text before and after it)."""
    text = V3.read_text()
    assert V3_RULE in text
    text = text.replace(V3_RULE, rule)
    start = text.index("static bool mmu_spte_update(u64 *sptep, u64 new_spte)\n{")
    text = text[:start] + around[0] + text[start:] + around[1]
    path = tmp_path / "tree" / "arch/x86/kvm/mmu.c"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return tmp_path / "tree"


@pytest.mark.parametrize(
    "inside",
    [
        # read in sequence, the branch was OR-ed into the condition: 'stale_w holds'
        "\t    || is_shadow_present_pte(old_spte)\n",
        # and here AND-ed: 'rule: ... && 0'
        "\t    && 0\n",
    ],
)
def test_conditional_compilation_inside_a_condition_is_refused(tmp_path: Path, inside: str) -> None:
    rule = (
        "\tif (is_writable_pte(old_spte) && !is_writable_pte(new_spte)\n"
        f"#ifdef CONFIG_NEVER_SET\n{inside}#endif\n\t    ) ret = true;"
    )
    with pytest.raises(KernelError) as info:
        extract(v3_tree(tmp_path, rule))
    assert str(info.value) == (
        f"{tmp_path / 'tree/arch/x86/kvm/mmu.c'}:43: #ifdef inside mmu_spte_update() splits an "
        "expression or a statement: the checker does not guess which branch your kernel "
        "builds; keep only that branch and retry"
    )


def test_check_kernel_refuses_it_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from checker.cli import cli

    rule = (
        "\tif (is_writable_pte(old_spte) && !is_writable_pte(new_spte)\n#ifdef CONFIG_NEVER_SET"
        "\n\t    || is_shadow_present_pte(old_spte)\n#endif\n\t    ) ret = true;"
    )
    tree, out = v3_tree(tmp_path, rule), tmp_path / "out"
    result = CliRunner().invoke(cli, ["check", "--kernel", str(tree), "--out", str(out)])
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1 and "mmu.c:43: #ifdef inside" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("body", "line"),
    [
        # inside a statement: the if's body
        (HEAD + "\tif (is_writable_pte(old_spte))\n#ifdef X\n\t\tWARN_ON(1);\n#endif\n", 7),
        # inside a call's arguments
        (HEAD + "\tWARN_ON(is_writable_pte(old_spte)\n#ifdef X\n\t\t&& 1\n#endif\n\t);\n", 7),
        # whole statements, but one not a call: the rule depends on it
        (HEAD + "\tWARN_ON(1);\n#ifdef X\n\tflush++;\n#endif\n", 7),
        # the branch at fault is named
        (HEAD + "#ifdef X\n\tWARN_ON(1);\n#else\n\tRETURN_TRUE;\n#endif\n", 8),
        (HEAD + "#ifdef X\n\tfoo(&flush);\n#endif\n", 6),
    ],
)
def test_conditional_compilation_around_other_than_ignored_calls_is_refused(
    tmp_path: Path, body: str, line: int
) -> None:
    with pytest.raises(KernelError) as info:
        extract(write(tmp_path, body + "\treturn flush;"))
    assert str(info.value).startswith(f"{tmp_path / 'arch/x86/kvm/mmu/mmu.c'}:{line}: #")
    assert "does not guess which branch your kernel builds" in str(info.value)


def test_two_definitions_are_refused_naming_both(tmp_path: Path) -> None:
    # the first one used to be read: 'rule: 0 && !is_writable_pte(new_spte)'
    other = V3.read_text()
    first = other.index("static bool mmu_spte_update(u64 *sptep, u64 new_spte)\n{")
    function = other[first:].replace("is_writable_pte(old_spte) && ", "0 && ")
    tree = v3_tree(tmp_path, around=("#ifdef CONFIG_X\n" + function + "#else\n", "#endif\n"))
    file = tree / "arch/x86/kvm/mmu.c"
    with pytest.raises(KernelError) as info:
        extract(tree)
    assert str(info.value) == (
        f"{file}:57: a second definition of mmu_spte_update() (the first is at {file}:25): "
        "the checker does not guess which one your kernel builds; keep only that one and retry"
    )


@pytest.mark.parametrize(
    "around", [("#ifdef CONFIG_X\n", "#endif\n"), ("#if 0\n#else\n", "#endif\n")]
)
def test_a_definition_inside_an_if_group_is_refused(
    tmp_path: Path, around: tuple[str, str]
) -> None:
    tree = v3_tree(tmp_path, around=around)
    line = 24 + around[0].count("\n")
    with pytest.raises(KernelError) as info:
        extract(tree)
    assert str(info.value) == (
        f"{tree / 'arch/x86/kvm/mmu.c'}:{line}: mmu_spte_update() is defined inside the #if"
        f"{'def' if 'ifdef' in around[0] else ''} at line 24: the checker does not guess "
        "whether your kernel builds it; keep only the definition your kernel builds and retry"
    )


def test_an_include_guard_is_not_a_condition_on_the_definition(tmp_path: Path) -> None:
    # v6.13's spte.h is guarded; so is this file, after closed groups of its own
    tree = v3_tree(
        tmp_path,
        around=("#ifdef CONFIG_X86_64\nint a;\n#else\nint b;\n#endif\n", "#endif /* GUARD */\n"),
    )
    file = tree / "arch/x86/kvm/mmu.c"
    file.write_text("#ifndef GUARD\n#define GUARD\n" + file.read_text())
    assert extract(tree).expression == "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"
    # an #ifndef that is not followed by the #define of its name is a condition
    file.write_text("#ifndef GUARD\n#define OTHER\n" + file.read_text()[30:])
    with pytest.raises(KernelError, match=r"mmu.c:\d+: mmu_spte_update\(\) is defined inside"):
        extract(tree)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # a statement macro: it was dropped, and the rule became 'false'
        ("\tif (is_writable_pte(old_spte))\n\t\tRETURN_TRUE;", "mmu.c:43: 'RETURN_TRUE' is a"),
        ("\tRETURN_TRUE;", "mmu.c:42: 'RETURN_TRUE' is a statement the checker does not"),
        ("\t(void)ret;", "mmu.c:42: '(void) ret' is a statement the checker does not"),
        ("\tif (is_writable_pte(old_spte))\n\t\tgoto out;", "mmu.c:43: unsupported control flow"),
        ("\tWARN_ON(ret = true);", "mmu.c:42: 'ret = true' changes a variable inside an"),
        ("\tkvm_set_pfn_accessed(ret++);", "mmu.c:42: 'ret++' changes a variable"),
        ("\tif (ret |= is_writable_pte(old_spte))\n\t\tWARN_ON(1);", "mmu.c:42: 'ret |= is_"),
        ("\tset_flag(&ret);", "mmu.c:42: '&ret' hands a variable's address on"),
        ("\tbool ret = true;", "mmu.c:42: 'bool ret = true' declares 'ret' again: it could"),
        # the conditions after it would read another value than the old SPTE
        ("\told_spte = new_spte;\n" + V3_RULE, "mmu.c:42: 'old_spte = new_spte' changes an SPTE"),
        ("\tnew_spte |= PT_WRITABLE_MASK;\n" + V3_RULE, "mmu.c:42: 'new_spte |= PT_WRITABLE_MASK"),
        ("\tif (ret)\n\t\tnew_spte++;\n" + V3_RULE, "mmu.c:43: 'new_spte++' changes an SPTE"),
    ],
)
def test_a_statement_that_could_change_the_rule_is_refused(
    tmp_path: Path, rule: str, message: str
) -> None:
    with pytest.raises(KernelError) as info:
        extract(v3_tree(tmp_path, rule))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "tree" / "arch/x86/kvm/mmu.c:4"))


def test_statements_known_to_be_irrelevant_are_skipped(tmp_path: Path) -> None:
    rule = (
        "\tWARN_ON(!is_writable_pte(old_spte));\n\tkvm_set_pfn_accessed(spte_to_pfn(old_spte));\n"
        "\t*sptep = new_spte;\n\tif (spte_has_volatile_bits(old_spte)) {\n"
        "\t\tkvm_pfn_t pfn = spte_to_pfn(old_spte);\n\t\tkvm_set_pfn_dirty(pfn);\n\t}\n"
        "\tu64 mask = spte_to_pfn(old_spte);\n\tmask += 1;\n\tmask++;\n" + V3_RULE
    )
    found = extract(v3_tree(tmp_path, rule))
    assert found.expression == "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"


def test_a_control_character_in_the_function_is_refused(tmp_path: Path) -> None:
    # it reached the terminal and the trace files (an invalid GraphML) as it was
    rule = "\t/* \x1b]0;PWN\x07 */\n" + V3_RULE
    with pytest.raises(InputError) as info:
        extract(v3_tree(tmp_path, rule))
    assert str(info.value) == (
        f"{tmp_path / 'tree/arch/x86/kvm/mmu.c'}:42:5: a control character ('\\x1b') in "
        "mmu_spte_update(): C text the checker reads holds printable characters, tabs and "
        "newlines only"
    )
    # elsewhere in the file it is never read as C, nor shown
    tree = v3_tree(tmp_path / "elsewhere", around=("/* \x1b[2J */\n", ""))
    assert extract(tree).expression.startswith("is_writable_pte(old_spte)")


def test_a_fifo_in_a_tree_is_named_not_taken_for_a_missing_file(
    tmp_path: Path, deadline: None
) -> None:
    (tmp_path / "arch/x86/kvm/mmu").mkdir(parents=True)
    os.mkfifo(tmp_path / "arch/x86/kvm/mmu/spte.h")
    with pytest.raises(KernelError) as info:
        extract(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'arch/x86/kvm/mmu/spte.h'}: not a regular file (a FIFO); pass a kernel "
        "tree or source file"
    )
