"""C flush conditions: what they mean in the model, and how bad ones are rejected."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines.smt import Symbolic
from checker.errors import InputError
from checker.model import PROPERTY_BY_NAME, SPTE_FIELDS
from checker.rules import cexpr
from checker.rules import formula as F
from checker.rules.cexpr import CExprError, Origin

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
        ("is_writable_pte(old_spte))", "--expr:1:26: unbalanced ')'"),
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
    rule = cexpr.parsed("is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)")
    explanation = rule.explain(old, new, False)
    assert explanation.decision is True
    assert [(rule.source(t.span), v) for t, v in explanation.terms] == [
        ("is_mmu_writable_spte(old_spte)", True),
        ("is_writable_pte(new_spte)", False),
    ]
    rule = cexpr.parsed(
        "/* c */ (old_spte & shadow_mmu_writable_mask)"
        " && likely((new_spte & PT_WRITABLE_MASK) == 0)"
    )
    explanation = rule.explain(old, new, False)
    assert explanation.decision is True
    assert [rule.source(t.span) for t in rule.tests] == [
        "old_spte & shadow_mmu_writable_mask",
        "(new_spte & PT_WRITABLE_MASK) == 0",
    ]


def located(text: str) -> list[tuple[str, str, str, bool]]:
    """Each test of ``text``: its own text, its group's, what its value is shown
    after, and whether that is negated."""
    rule = cexpr.parse_rule(text, Origin("--expr"))
    return [
        (
            text[t.span.start : t.span.end],
            text[t.group.start : t.group.end],
            text[t.shown.start : t.shown.end],
            t.negated,
        )
        for t in rule.tests
    ]


def test_each_test_is_located_in_the_text_as_given() -> None:
    """Spans are offsets into the text itself: comments, tabs and line breaks
    included, so the positions are those of the source, not of a normalised copy."""
    text = (
        "/* first */ is_mmu_writable_spte(old_spte /* the old one */)\n"
        "\t&& // then\n  ! /* not */ (\n new_spte &\tPT_WRITABLE_MASK )"
    )
    assert located(text) == [
        (
            "is_mmu_writable_spte(old_spte /* the old one */)",
            "is_mmu_writable_spte(old_spte /* the old one */)",
            "is_mmu_writable_spte(old_spte /* the old one */)",
            False,
        ),
        (
            "new_spte &\tPT_WRITABLE_MASK",
            "(\n new_spte &\tPT_WRITABLE_MASK )",
            "! /* not */ (\n new_spte &\tPT_WRITABLE_MASK )",
            True,
        ),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # '!' of '!=' is part of the test, not a negation of it
        (
            "is_writable_pte(old_spte)!=is_writable_pte(new_spte)",
            [("is_writable_pte(old_spte)!=is_writable_pte(new_spte)",) * 3 + (False,)],
        ),
        # likely(), casts and parentheses around a test alone are its group
        (
            "!!likely((bool)((old_spte & PT_WRITABLE_MASK)))",
            [
                (
                    "old_spte & PT_WRITABLE_MASK",
                    "likely((bool)((old_spte & PT_WRITABLE_MASK)))",
                    "!!likely((bool)((old_spte & PT_WRITABLE_MASK)))",
                    False,
                )
            ],
        ),
        # not a '!' beyond parentheses around a '!', nor a likely() around a '!'
        (
            "!(!is_writable_pte(old_spte)) || likely(!is_writable_pte(new_spte))",
            [
                ("is_writable_pte(old_spte)",) * 2 + ("!is_writable_pte(old_spte)", True),
                ("is_writable_pte(new_spte)",) * 2 + ("!is_writable_pte(new_spte)", True),
            ],
        ),
        # a call's parentheses are not a group's; a cast inside a test is the test's
        (
            "spte_is_bit_changed((old_spte), new_spte, (PT_WRITABLE_MASK)) && "
            "(u64)((old_spte)) & BIT_ULL(10)",
            [
                ("spte_is_bit_changed((old_spte), new_spte, (PT_WRITABLE_MASK))",) * 3 + (False,),
                ("(u64)((old_spte)) & BIT_ULL(10)",) * 3 + (False,),
            ],
        ),
        # the operands of '?:' are tested where they stand; constants are no test
        (
            "is_writable_pte(old_spte) ? true : (is_writable_pte(new_spte))",
            [
                ("is_writable_pte(old_spte)",) * 3 + (False,),
                ("is_writable_pte(new_spte)",) + ("(is_writable_pte(new_spte))",) * 2 + (False,),
            ],
        ),
        ("true && !false", []),
    ],
)
def test_groups_and_negations(text: str, expected: list[tuple[str, str, str, bool]]) -> None:
    assert located(text) == expected


def test_each_test_means_what_its_text_does() -> None:
    """A test's formula is its own text's; the '!'s in front of it negate it."""
    text = "is_dirty_spte(old_spte) && !(old_spte & shadow_accessed_mask)"
    rule = cexpr.parse_rule(text, Origin("--expr"))
    assert [t.formula for t in rule.tests] == [
        parse("is_dirty_spte(old_spte)"),
        parse("old_spte & shadow_accessed_mask"),
    ]
    assert rule.formula == parse(text)


# --- hostile input: exactly one expression, within stated limits -------------------------


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the test, instead of hanging it, if the block runs longer than ``seconds``
    (a bound far above the expected time, so never flaky)."""

    class Expired(BaseException):
        pass

    def expire(signum: int, frame: object) -> None:
        raise Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Expired:
        # raised afresh here: pytest cannot format a traceback from inside the handler
        raise AssertionError(f"took longer than {seconds} s: a hang") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # closes the wrapper's 'return (' and declares more: the rule shown would not
        # be the rule checked (it parsed as 'true' before)
        (
            "is_writable_pte(old_spte)); } int foo; int bar(void) { return (1",
            "--expr:1:26: unbalanced ')': the flush condition must be exactly one C expression",
        ),
        ("true); int x = (1", "--expr:1:5: unbalanced ')'"),
        ("true; }\nint f(void) { return 1", "--expr:1:7: unbalanced '}'"),
        # a #line directive would move every position the checker reports
        ('true\n#line 1 "elsewhere.c"\n', "--expr:2:1: '#' (a preprocessor directive)"),
        ("true /* never closed", "--expr:1:6: a '/*' comment is not closed"),
        ("true, false", "unsupported construct in a flush condition: ExprList"),
    ],
)
def test_only_one_expression_is_accepted(text: str, message: str) -> None:
    with pytest.raises(CExprError) as info:
        parse(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_parsed_tree_must_be_the_wrapper_returning_one_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the token check is the first guard; the tree is checked too, on its own
    monkeypatch.setattr(cexpr, "check_tokens", lambda *args: None)
    with pytest.raises(CExprError, match=r"^--expr:1:1: the flush condition must be one C"):
        parse("is_writable_pte(old_spte)); } int foo; int bar(void) { return (1")


def test_a_spec_file_cannot_smuggle_a_second_rule(tmp_path: Path) -> None:
    from checker.rules.specs import load_rule

    spec = tmp_path / "sneaky.toml"
    expect = "\n".join(f'{p} = "holds"' for p in PROPERTY_BY_NAME)
    spec.write_text(
        'name = "sneaky"\n'
        "expression = 'is_writable_pte(old_spte)); } int foo; int bar(void) { return (1'\n"
        f"[expect]\n{expect}\n"
    )
    with pytest.raises(InputError, match=r"sneaky.toml:2:40: unbalanced '\)'"):
        load_rule(spec)


def chain(operator: str, terms: int) -> str:
    return f" {operator} ".join(["is_writable_pte(old_spte)"] * terms)


@pytest.mark.parametrize(
    ("text", "meaning"),
    [
        # sizes a real kernel could have just work: hundreds of terms, deep brackets
        (chain("&&", 500), OLD["writable"]),
        (chain("||", 500), OLD["writable"]),
        ("(" * 99 + "is_writable_pte(old_spte)" + ")" * 99, OLD["writable"]),
        ("!" * 500 + "is_writable_pte(old_spte)", OLD["writable"]),
        (" & ".join(["old_spte"] * 400) + " & PT_WRITABLE_MASK", OLD["writable"]),
        # a 64-bit shift keeps the low 64 bits, as C's u64 does
        ("old_spte & (0x8000000000000002ULL << 1) & PT_ACCESSED_MASK", F.FALSE),
    ],
)
def test_large_but_plausible_conditions_are_read(text: str, meaning: F.Formula) -> None:
    assert equivalent(parse(text), meaning)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "(" * 120 + "true" + ")" * 120,
            "--expr:1:101: the flush condition nests brackets more than 100 deep, "
            "the checker's limit",
        ),
        (
            chain("&&", 2500),
            "the flush condition is longer than 10000 tokens, the checker's limit",
        ),
        (
            "!" * 1200 + "true",
            "the C text is nested more than 1000 operators or statements deep, the checker's limit",
        ),
        (
            "!" * 9990 + "true",
            "--expr:1:1: the C text is nested too deeply for the checker "
            "(limits: 100 brackets, 1000 operators or statements)",
        ),
        (
            "".join(f"is_writable_pte(old_spte) ? {i % 2} : " for i in range(300)) + "0",
            "--expr:1:1: the rule's formula is nested more than 200 deep, the checker's limit",
        ),
        (
            "(" * 40 + "is_writable_pte(old_spte)" + " == is_writable_pte(new_spte))" * 40,
            "--expr:1:1: the rule's formula has more than 200000 terms",
        ),
        ("old_spte & (1ULL << 1000000000000)", "--expr:1:21: a shift by 1000000000000 is"),
        ("old_spte & (1ULL << 64)", "--expr:1:21: a shift by 64 is outside 64 bits"),
        ("old_spte & BIT_ULL(1000000000000)", "BIT_ULL(1000000000000) is outside a 64-bit"),
        ("old_spte & 0x10000000000000000", "the constant 0x10000000000000000 does not fit"),
        # it said "expected an integer constant"
        (
            "old_spte << 1000000000000",
            "--expr:1:1: a shift of anything but a constant is not a condition the checker "
            "reads (shift constants, as in '1ULL << 10'; test an SPTE bit with a mask, as in "
            "'old_spte & BIT_ULL(10)')",
        ),
        (
            "old_spte & (1ULL << new_spte)",
            "--expr:1:21: a shift by anything but a constant is not a condition the checker reads",
        ),
    ],
)
def test_deep_or_huge_conditions_are_refused_naming_the_limit(text: str, message: str) -> None:
    with time_limit(20), pytest.raises(CExprError) as info:
        parse(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_recursion_limit_is_restored() -> None:
    before = sys.getrecursionlimit()
    parse(chain("&&", 500))
    with pytest.raises(CExprError):
        parse("!" * 9990 + "true")
    assert sys.getrecursionlimit() == before


def test_explain_reads_long_chains() -> None:
    from checker.model import Spte

    spte = Spte(True, True, True, True, False, False, False)
    text = chain("&&", 2000)
    explanation = cexpr.parse_rule(text, Origin("--expr")).explain(spte, spte, False)
    assert explanation.decision is True and explanation.values == (True,) * 2000
    last = explanation.rule.tests[-1]
    assert (last.span.start, last.span.end) == (
        len(text) - len("is_writable_pte(old_spte)"),
        len(text),
    )


def test_strip_comments_is_linear_on_unclosed_comments() -> None:
    # every '/*' used to search the rest of the text for its '*/'
    text = "/* x " * 100_000
    with time_limit(20):
        assert cexpr.strip_comments(text) == text


@pytest.mark.parametrize(
    ("text", "column", "shown"),
    [
        # an OSC sequence in a comment: it reached the terminal and the trace files
        ("is_writable_pte(old_spte) /* \x1b]0;PWN\x07 */", 30, "\\x1b"),
        ("is_writable_pte(old_spte)\x07", 26, "\\x07"),
        ("true // \x00", 9, "\\x00"),
        ("true\r\n", 5, "\\r"),
        ("true\x0b", 5, "\\x0b"),
        ("\x7ftrue", 1, "\\x7f"),
        ("true /* \x9b2J */", 9, "\\x9b"),
        ("true /* \u202e */", 9, "\\u202e"),
    ],
)
def test_control_characters_are_refused_anywhere(text: str, column: int, shown: str) -> None:
    with pytest.raises(CExprError) as info:
        parse(text)
    assert str(info.value) == (
        f"--expr:1:{column}: a control character ('{shown}') in the flush condition: C text "
        "the checker reads holds printable characters, tabs and newlines only"
    )
    # tabs and newlines are C whitespace
    assert equivalent(parse("\tis_writable_pte(old_spte)\n&& true // x\n"), OLD["writable"])


def test_a_spec_file_cannot_hold_a_control_character(tmp_path: Path) -> None:
    from checker.rules.specs import load_rule

    spec = tmp_path / "bell.toml"
    expect = "\n".join(f'{p} = "holds"' for p in PROPERTY_BY_NAME)
    spec.write_text(
        f'name = "bell"\nexpression = "is_writable_pte(old_spte) \\u001b[2J"\n[expect]\n{expect}\n'
    )
    with pytest.raises(InputError, match=r"^\S*bell.toml:2:41: a control character \('\\x1b'\)"):
        load_rule(spec)


# --- fuzzing the --expr parser -----------------------------------------------------------

VALID = (
    "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
    "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
    "is_writable_pte(old_spte) && !is_writable_pte(new_spte)",
    "(old_spte & shadow_mmu_writable_mask) && (new_spte & PT_WRITABLE_MASK) == 0",
    "spte_is_bit_cleared(old_spte, new_spte, shadow_accessed_mask) || "
    "unlikely(is_dirty_spte(old_spte) != is_dirty_spte(new_spte))",
    "/* c */ old_spte & BIT_ULL(10) && !(new_spte & (1ULL << 1)) ? true : false",
)
PIECES = (
    *"()[]{}!~&|^=<>?:;,.#\"'\\/*+-%\n\t 0123456789",
    "&&",
    "||",
    "<<",
    "==",
    "/*",
    "*/",
    "//",
    "0x",
    "ULL",
    "old_spte",
    "new_spte",
    "is_writable_pte(",
    "BIT_ULL(",
    "likely(",
    "(u64)",
    "true",
    "false",
    "}",
    "return",
    "int x;",
    "#line 9",
    "\x00",
    "é",
    # control characters, in and out of comments
    "\x1b",
    "\x1b]0;x\x07",
    "\r",
    "\x7f",
    "\x85",
    "\u202e",
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid condition with a few pieces inserted, deleted or repeated."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(("insert", "delete", "repeat")))
        if edit == "insert":
            text = text[:at] + draw(st.sampled_from(PIECES)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        else:
            piece = text[at : at + draw(st.integers(1, 12))]
            text = text[:at] + piece * draw(st.integers(2, 50)) + text[at:]
    return text


@st.composite
def grown(draw: st.DrawFn) -> str:
    """A valid condition grown to a hostile size: deeply bracketed or negated, repeated
    into a long chain, or shifting by a huge count."""
    text = draw(st.sampled_from(VALID))
    n = draw(st.integers(0, 700))
    return draw(
        st.sampled_from(
            (
                "(" * (n // 2) + text + ")" * (n // 2),
                "!" * n + f"({text})",
                " && ".join([f"({text})"] * max(n, 1)),
                f"({text}) || (old_spte & (1ULL << {draw(st.integers(0, 1 << 40))}))",
            )
        )
    )


@pytest.mark.slow
@settings(max_examples=300 if os.environ.get("CI") else 150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(PIECES), max_size=60).map("".join),
        mutated(),
        grown(),
    )
)
def test_fuzz_every_text_is_a_formula_or_a_one_line_input_error(text: str) -> None:
    """Every outcome is a formula or a one-line InputError free of control
    characters: never another exception, never more than FUZZ_SECONDS, never more
    than FUZZ_MEMORY of Python memory. Each test of a formula is located in the
    text (:func:`check_located`)."""
    import tracemalloc

    rule: cexpr.ParsedRule | None = None
    tracemalloc.start()
    try:
        with time_limit(FUZZ_SECONDS):
            try:
                rule = cexpr.parse_rule(text, Origin("--expr"))
            except InputError as error:
                message = str(error)
                assert message and message.isprintable(), message
            else:
                assert isinstance(rule.formula, F.Formula)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < FUZZ_MEMORY, f"parsing took {peak} bytes"
    if rule is not None:
        check_located(rule)


def check_located(rule: cexpr.ParsedRule, most: int = 25) -> None:
    """The tests (the first ``most``) are in source order, apart, each inside its
    group inside what it is shown with; and each of those texts, parsed alone,
    means the test (negated by its '!'s)."""
    text, end = rule.text, 0
    for test in rule.tests[:most]:
        assert end <= test.shown.start <= test.group.start <= test.span.start
        assert test.span.start < test.span.end <= test.group.end == test.shown.end <= len(text)
        end = test.shown.end
        meaning = F.not_(test.formula) if test.negated else test.formula
        assert parse(text[test.span.start : test.span.end]) == test.formula
        assert parse(text[test.group.start : test.group.end]) == test.formula
        assert parse(text[test.shown.start : test.shown.end]) == meaning


#: bounds on one fuzzed parse, far above what any takes (the largest texts within
#: the limits, 10,000 tokens or 9,990 '!', peak near 2 MiB and take up to 6 s under
#: tracemalloc) and far below trouble
FUZZ_SECONDS = 20
FUZZ_MEMORY = 64 << 20


@pytest.mark.parametrize(
    "text",
    [
        "is_writable_pte(old_spte)); } int foo; int bar(void) { return (1",
        "(" * 120 + "true" + ")" * 120,
        "old_spte & (1ULL << 1000000000000)",
    ],
)
def test_the_cli_refuses_hostile_expressions_in_one_line(text: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from checker.cli import cli

    result = CliRunner().invoke(cli, ["check", "--expr", text, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())
