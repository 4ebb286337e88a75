"""The step table and its text: lanes per actor, change marks, the rule's decision."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker import text
from checker.engines.bmc import SmtTrace
from checker.engines.certify import replay
from checker.engines.semantics import Action
from checker.model import Spte, System
from checker.rules import cexpr
from checker.rules.specs import adhoc_rule
from checker.traces import view

from .traces import CLASSIC, LEGACY, build, classic

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_classic_trace_replays() -> None:
    trace = classic().trace
    again = replay(
        System(adhoc_rule(LEGACY)),
        "legacy",
        trace.prop,
        SmtTrace(tuple(s.action for s in trace.steps), trace.states),
    )
    assert again.steps == trace.steps


def row(table: view.Table, step: int) -> dict[str, str]:
    return {k: c.text for k, c in table.rows[step].cells.items()}


def test_each_actor_has_its_own_lane() -> None:
    table = view.step_table(classic().trace, LEGACY)
    keys = [c.key for c in table.columns]
    assert keys[:4] == ["step", "vcpu0", "vcpu1", "host"]
    assert row(table, 3)["vcpu0"] == "page_fault(host_writable, write_fault)"
    assert row(table, 4)["vcpu1"] == "guest_access"
    assert row(table, 5)["host"] == "harvest"
    assert row(table, 5)["function"] == "kvm_arch_mmu_enable_log_dirty_pt_masked"
    assert "vcpu0" not in row(table, 4) and "host" not in row(table, 4)


def test_changed_values_are_marked_without_colour() -> None:
    table = view.step_table(classic().trace, LEGACY)
    assert row(table, 3)["spte"] == "+P +W +MW +HW"
    assert row(table, 4)["tlb1"] == "none→rw"
    assert row(table, 4)["tlb0"] == "none"
    assert row(table, 5)["spte"] == "P -W MW HW"
    assert row(table, 5)["x86"] == "0x0e00*"
    assert row(table, 5)["ept"] == "0x0600000000000800*"
    assert row(table, 4)["x86"] == "0x0e02"  # unchanged: no mark
    assert row(table, 5)["gfn"] == "logging -dirty-bit +harvest-in-flight"
    assert table.rows[4].cells["tlb1"].changed and not table.rows[4].cells["tlb0"].changed


def test_the_rule_decision_shows_each_helper_and_who_ignores_it() -> None:
    table = view.step_table(classic().trace, LEGACY)
    assert row(table, 6)["decision"] == (
        "is_writable_pte(old_spte)=0 && !is_writable_pte(new_spte)=1 → no flush"
    )
    assert row(table, 6)["flush"] == "no"
    assert row(table, 5)["decision"] == (
        "is_writable_pte(old_spte)=1 && !is_writable_pte(new_spte)=1 → flush, "
        "ignored by the caller: the caller flushes after unlock"
    )
    assert row(table, 3)["decision"] == "rule not consulted: the old SPTE is not present"
    assert row(table, 2)["flush"] == "yes" and row(table, 2)["decision"] == "always flushes"
    assert row(table, 4)["flush"] == "" and row(table, 4)["decision"] == ""


def test_the_decision_reads_the_same_from_the_parsed_rule() -> None:
    trace = classic().trace
    rule = adhoc_rule(LEGACY)
    assert rule.parsed.text == LEGACY
    for step in trace.steps:
        assert view.decision_text(step, rule.parsed) == view.decision_text(step, LEGACY)


def test_the_violating_step_is_marked() -> None:
    table = view.step_table(classic().trace, LEGACY)
    assert row(table, 7)["step"] == "7 ✗" and table.rows[7].violation
    assert not any(r.violation for r in table.rows[:7])


def test_diff_keeps_only_changes_and_names_what_never_changes() -> None:
    table = view.step_table(classic().trace, LEGACY, diff=True)
    keys = [c.key for c in table.columns]
    assert "tlb0" not in keys and table.unchanged == (("tlb0", "none"),)
    assert row(table, 0)["spte"] == "-"  # step 0 in full
    assert row(table, 4)["spte"] == "" and row(table, 4)["tlb1"] == "none→rw"
    assert row(table, 5)["spte"] == "-W"
    assert row(table, 5)["gfn"] == "-dirty-bit +harvest-in-flight"
    assert row(table, 6)["decision"].endswith("→ no flush")  # the step itself stays


#: an update: old P W MW HW, new P MW HW (W cleared), A/D bits on
T, F = True, False
OLD_SPTE, NEW_SPTE = Spte(T, T, T, T, F, F, F), Spte(T, F, T, T, F, F, F)


def annotated(expression: str) -> str:
    return view.annotate(cexpr.parsed(expression).explain(OLD_SPTE, NEW_SPTE, True))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
            "is_mmu_writable_spte(old_spte)=1 && !is_writable_pte(new_spte)=1",
        ),
        (
            "(old_spte & PT_WRITABLE_MASK)  &&\n  !(new_spte&shadow_mmu_writable_mask)",
            "(old_spte & PT_WRITABLE_MASK)=1 && !(new_spte&shadow_mmu_writable_mask)=0",
        ),
        (
            "is_writable_pte(old_spte) || (old_spte ^ new_spte) & BIT_ULL(10)",
            "is_writable_pte(old_spte)=1 || ((old_spte ^ new_spte) & BIT_ULL(10))=0",
        ),
        ("!!is_dirty_spte(old_spte) /* comment */", "!!is_dirty_spte(old_spte)=0"),
        (
            "(old_spte & PT_WRITABLE_MASK) != (new_spte & PT_WRITABLE_MASK)",
            "((old_spte & PT_WRITABLE_MASK) != (new_spte & PT_WRITABLE_MASK))=1",
        ),
        # a comment inside a test, and lines broken inside and between tests
        (
            "/* why */ is_mmu_writable_spte( /* old */ old_spte)\n"
            "\t&& // the new one\n   !is_writable_pte(new_spte)\n",
            "is_mmu_writable_spte( old_spte)=1 && !is_writable_pte(new_spte)=1",
        ),
        # likely() and parentheses keep the value; the '!' in front turns it around
        (
            "likely((new_spte & PT_WRITABLE_MASK) == 0) && !unlikely(is_dirty_spte(old_spte))",
            "likely((new_spte & PT_WRITABLE_MASK) == 0)=1 && !unlikely(is_dirty_spte(old_spte))=1",
        ),
        (
            "unlikely(!is_writable_pte(new_spte)) || ((is_writable_pte(old_spte)))",
            "unlikely(!is_writable_pte(new_spte)=1) || ((is_writable_pte(old_spte)))=1",
        ),
        # a '!' apart from its test, or in front of a cast, is still the test's
        (
            "is_writable_pte(old_spte) && ! /* c */ is_writable_pte(new_spte)",
            "is_writable_pte(old_spte)=1 && ! is_writable_pte(new_spte)=1",
        ),
        (
            "!(bool)(new_spte & PT_WRITABLE_MASK) && (u64)old_spte & PT_WRITABLE_MASK",
            "!(bool)(new_spte & PT_WRITABLE_MASK)=1 && ((u64)old_spte & PT_WRITABLE_MASK)=1",
        ),
        # the '!' of '!=' is no negation; a '!' outside parentheses around a '!' is
        # shown apart from it
        (
            "is_dirty_spte(old_spte) != is_dirty_spte(new_spte) && !(!is_writable_pte(old_spte))",
            "(is_dirty_spte(old_spte) != is_dirty_spte(new_spte))=0 && "
            "!(!is_writable_pte(old_spte)=0)",
        ),
        (
            "((old_spte)) & PT_WRITABLE_MASK ? true : false",
            "(((old_spte)) & PT_WRITABLE_MASK)=1 ? true : false",
        ),
        ("true", "true"),
    ],
)
def test_annotate_places_each_value_after_its_test(expression: str, expected: str) -> None:
    assert annotated(expression) == expected


def test_the_rule_decision_from_a_kernel_tree() -> None:
    """A kernel rule's expression is the clauses written back as one C expression:
    the tests are located in that text, the one a trace records."""
    from checker.rules.kernel import rule_from_kernel

    from .conftest import ROOT

    rule = rule_from_kernel(ROOT / "tests/fixtures/kernels/v6.12")
    assert rule.parsed.text == rule.expression
    assert [rule.expression[t.span.start : t.span.end] for t in rule.parsed.tests][:2] == [
        "is_mmu_writable_spte(old_spte)",
        "is_writable_pte(new_spte)",
    ]
    assert view.annotate(rule.parsed.explain(OLD_SPTE, NEW_SPTE, True)) == (
        "(is_mmu_writable_spte(old_spte)=1 && !is_writable_pte(new_spte)=1) || "
        "(is_accessed_spte(old_spte)=0 && !is_accessed_spte(new_spte)=1) || "
        "(is_dirty_spte(old_spte)=0 && !is_dirty_spte(new_spte)=1)"
    )


def test_the_rule_decision_of_a_multi_line_spec(tmp_path: Path) -> None:
    from checker.model import PROPERTY_BY_NAME
    from checker.rules.specs import load_rule

    spec = tmp_path / "lines.toml"
    expect = "\n".join(f'{p} = "holds"' for p in PROPERTY_BY_NAME)
    spec.write_text(
        'name = "lines"\nexpression = """\n'
        "/* MMU-writable cleared */\n"
        "is_mmu_writable_spte(old_spte) && // was\n"
        "\t!is_mmu_writable_spte(new_spte) /* is not */\n"
        f'"""\n[expect]\n{expect}\n'
    )
    rule = load_rule(spec)
    # the spans are offsets into the expression's text, not into the TOML file
    test = rule.parsed.tests[1]
    assert rule.expression[test.shown.start : test.shown.end] == "!is_mmu_writable_spte(new_spte)"
    assert view.annotate(rule.parsed.explain(OLD_SPTE, NEW_SPTE, True)) == (
        "is_mmu_writable_spte(old_spte)=1 && !is_mmu_writable_spte(new_spte)=0"
    )


# --- every annotation, against one built alongside the text ------------------------------

#: an atomic test, ``{s}`` where white space or a comment may go, whether it is an
#: operator expression, and its meaning written out here independently of the checker
ATOMS: tuple[tuple[str, bool, Callable[[Spte[bool], Spte[bool], bool], bool]], ...] = (
    ("is_writable_pte({s}old_spte{s})", False, lambda o, n, ad: o.writable),
    ("is_mmu_writable_spte({s}new_spte)", False, lambda o, n, ad: n.mmu_writable),
    ("is_dirty_spte(old_spte{s})", False, lambda o, n, ad: o.dirty if ad else o.writable),
    (
        "spte_is_bit_cleared(old_spte,{s}new_spte,{s}shadow_mmu_writable_mask)",
        False,
        lambda o, n, ad: o.mmu_writable and not n.mmu_writable,
    ),
    ("old_spte{s}&{s}PT_WRITABLE_MASK", True, lambda o, n, ad: o.writable),
    ("new_spte &{s}shadow_accessed_mask", True, lambda o, n, ad: ad and n.accessed),
    ("({s}new_spte & PT_WRITABLE_MASK{s}){s}=={s}0", True, lambda o, n, ad: not n.writable),
    (
        "is_writable_pte(old_spte){s}!={s}is_writable_pte(new_spte)",
        True,
        lambda o, n, ad: o.writable != n.writable,
    ),
    ("(u64){s}old_spte & SPTE_HOST_WRITEABLE", True, lambda o, n, ad: o.host_writable),
)
#: what may stand between two tokens
FILL = ("", " ", "  ", "\n", "\t", " /* c */ ", "/* a\nb */", "// c\n", "\n  /**/")

#: an expression as a tree: ("atom", i, fills), ("not", fill, e), ("paren", fill, e,
#: fill), ("call", name, fill, e, fill), ("cast", fill, e), ("chain", op, [(e, fill,
#: fill), ...])
Tree = tuple[Any, ...]


def fill() -> st.SearchStrategy[str]:
    return st.sampled_from(FILL)


def tight(e: Tree) -> Tree:
    """``e`` in parentheses where an operand of '!' or a cast needs them."""
    if e[0] == "chain" or (e[0] == "atom" and ATOMS[e[1]][1]):
        return ("paren", "", e, "")
    return e


def in_chain(e: Tree) -> Tree:
    return ("paren", "", e, "") if e[0] == "chain" else e


def wrap(e: Tree, wrappers: list[tuple[str, str, str, str]]) -> Tree:
    """``e`` inside ``wrappers``, innermost first: '!', parentheses, likely() or a cast."""
    for kind, a, b, name in wrappers:
        if kind == "not":
            e = ("not", a, tight(e))
        elif kind == "paren":
            e = ("paren", a, e, b)
        elif kind == "call":
            e = ("call", name, a, e, b)
        else:
            e = ("cast", a, tight(e))
    return e


def trees() -> st.SearchStrategy[Tree]:
    """Tests inside a few '!', parentheses, likely() and casts (where the view's
    rules are), joined by '&&' and '||' and wrapped again."""
    wrappers = st.lists(
        st.tuples(
            st.sampled_from(("not", "paren", "call", "cast")),
            fill(),
            fill(),
            st.sampled_from(("likely", "unlikely")),
        ),
        max_size=5,
    )
    atoms = st.builds(
        lambda i, fills: ("atom", i, tuple(fills)),
        st.integers(0, len(ATOMS) - 1),
        st.lists(fill(), min_size=4, max_size=4),
    )

    def chains(inner: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
        chain = st.builds(
            lambda op, es: ("chain", op, [(in_chain(e), a, b) for e, a, b in es]),
            st.sampled_from(("&&", "||")),
            st.lists(st.tuples(inner, fill(), fill()), min_size=2, max_size=4),
        )
        return st.builds(wrap, chain, wrappers)

    return st.recursive(st.builds(wrap, atoms, wrappers), chains, max_leaves=8)


def source(e: Tree) -> str:
    """The C text of ``e``; it starts and ends with a token, never with a fill."""
    match e:
        case ("atom", i, fills):
            text: str = ATOMS[i][0]
            for f in fills:
                text = text.replace("{s}", f, 1)
            return text.replace("{s}", "")
        case ("not", f, operand):
            return f"!{f}{source(operand)}"
        case ("paren", a, inner, b):
            return f"({a}{source(inner)}{b})"
        case ("call", name, a, inner, b):
            return f"{name}({a}{source(inner)}{b})"
        case ("cast", f, operand):
            return f"(bool){f}{source(operand)}"
        case ("chain", op, operands):
            return f" {op} ".join(f"{a}{source(o)}{b}" for o, a, b in operands)
    raise AssertionError(e)


def marked(e: Tree, old: Spte[bool], new: Spte[bool], ad: bool, bare: list[int]) -> str:
    """``source(e)`` with each test's value where the view should show it: after
    the '!'s applied to it (as many as are written one right before the next) and
    the parentheses, casts and likely() around it alone, negated by those '!'s; an
    operator test with nothing of those around it in parentheses (counted in
    ``bare``)."""
    nots, inner = 0, e
    while inner[0] == "not":
        nots, inner = nots + 1, inner[2]
    wrapped = 0
    while inner[0] in ("paren", "call", "cast"):
        wrapped, inner = wrapped + 1, inner[3 if inner[0] == "call" else 2]
    if inner[0] == "atom":
        _, operator, meaning = ATOMS[inner[1]]
        text = source(e)
        if operator and not wrapped:
            bare.append(1)
            text = f"({text})"
        return f"{text}={int(meaning(old, new, ad) != (nots % 2 == 1))}"
    match e:
        case ("not", f, operand):
            return f"!{f}{marked(operand, old, new, ad, bare)}"
        case ("paren", a, inner, b):
            return f"({a}{marked(inner, old, new, ad, bare)}{b})"
        case ("call", name, a, inner, b):
            return f"{name}({a}{marked(inner, old, new, ad, bare)}{b})"
        case ("cast", f, operand):
            return f"(bool){f}{marked(operand, old, new, ad, bare)}"
        case ("chain", op, operands):
            return f" {op} ".join(f"{a}{marked(o, old, new, ad, bare)}{b}" for o, a, b in operands)
    raise AssertionError(e)


#: a value the view shows (not the '=' of '==', '!=', '<=', '>=')
MARK = re.compile(r"(?<![=!<>])=[01]")


def normal(text: str) -> str:
    """Comments dropped, runs of white space as one space: how the view shows C."""
    return " ".join(cexpr.strip_comments(text).split())


sptes = st.builds(Spte, *[st.booleans()] * 7)


@settings(max_examples=300, deadline=None)
@given(trees(), fill(), fill(), sptes, sptes, st.booleans())
def test_each_value_is_shown_after_its_test(
    tree: Tree, before: str, after: str, old: Spte[bool], new: Spte[bool], ad: bool
) -> None:
    """For expressions built from the grammar, with comments and line breaks
    anywhere: the view's text is the expression's with each test's value (as this
    test computes it) right after the test, its '!'s and brackets; and, the marks
    taken out, the expression's text as the view shows C (plus the parentheses
    around operator tests that have none)."""
    text = f"{before}{source(tree)}{after}"
    bare: list[int] = []
    expected = normal(marked(tree, old, new, ad, bare))
    explanation = cexpr.parsed(text).explain(old, new, ad)
    shown = view.annotate(explanation)
    assert shown == expected, text
    if not bare:
        assert MARK.sub("", shown) == normal(text)

    def squeezed(c: str) -> str:
        return "".join(cexpr.strip_comments(c).split())

    # each test's span is exactly one of the atoms, and its value is the atom's
    meanings = {squeezed(atom.replace("{s}", "")): meaning for atom, _, meaning in ATOMS}
    for test, value in explanation.terms:
        assert value == meanings[squeezed(text[test.span.start : test.span.end])](old, new, ad)


def test_render_ends_with_the_property_in_words_and_the_command() -> None:
    cx = classic()
    lines = view.render(cx.trace, LEGACY, cx.provenance.command, about=["from a test"])
    assert (
        lines[0] == "write_tracking (write-tracking) violated in 7 steps with 2 vCPUs, A/D bits off"
    )
    assert lines[1] == f"rule legacy: {LEGACY}"
    assert lines[-1] == (
        "✗ write_tracking violated at step 7: "
        + cx.trace.prop.statement
        + "; reproduce: checker check --rule legacy --vcpus 2 --era v6.4-v6.12 --mmu shadow"
    )
    assert not any(ANSI.search(line) for line in lines)


def test_colour_adds_escapes_and_nothing_else() -> None:
    cx = classic()
    plain = view.render(cx.trace, LEGACY, "c", diff=True)
    coloured = view.render(cx.trace, LEGACY, "c", diff=True, paint=view.ansi)
    assert coloured != plain
    assert [ANSI.sub("", line) for line in coloured] == plain


def test_columns_line_up() -> None:
    lines = view.table_lines(view.step_table(classic().trace, LEGACY))
    header, dashes = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"-+", dashes)]
    assert [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)] == starts


def test_a_single_vcpu_trace_has_one_lane() -> None:
    trace = build(LEGACY, "precision", (CLASSIC[2], Action("guest_access", 0)), vcpus=1)
    keys = [c.key for c in view.step_table(trace, LEGACY).columns]
    assert keys[:3] == ["step", "vcpu0", "host"] and "tlb1" not in keys


@pytest.mark.parametrize(
    ("flag", "tty", "env", "expected"),
    [
        (None, True, {}, True),
        (None, False, {}, False),
        (None, True, {"NO_COLOR": "1"}, False),
        (None, True, {"NO_COLOR": ""}, True),
        (True, False, {"NO_COLOR": "1"}, True),
        (False, True, {}, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    flag: bool | None, tty: bool, env: dict[str, str], expected: bool
) -> None:
    assert view.use_colour(flag, tty, env) is expected


def test_ascii_marks_for_a_stream_without_them() -> None:
    assert view.needs_ascii("latin-1") and view.needs_ascii("ascii")
    assert not view.needs_ascii("utf-8") and not view.needs_ascii(None)
    cx = classic()
    lines = view.render(cx.trace, LEGACY, "c", ascii=True)
    assert all(line.isascii() for line in lines)
    assert "none->rw" in "\n".join(lines) and lines[-1].startswith("X write_tracking violated")
    table = [line for line in lines if line.startswith(("step", "----"))]
    assert len(table) == 2
    header, dashes = table
    rows = lines[lines.index(dashes) + 1 : lines.index(dashes) + 9]
    column = header.index("tlb1")  # columns still line up after "->"
    assert all(row[column - 2 : column] == "  " for row in rows)


def test_text_from_a_file_is_shown_escaped_never_obeyed() -> None:
    """A rule name, expression comment, command or source holding OSC/CSI escapes, C1
    controls or line breaks must neither reach the terminal nor split a line."""
    import dataclasses

    cx = classic()
    hostile = "\x1b]0;owned\x07\x9b2J\u202e\n"
    trace = dataclasses.replace(cx.trace, rule_name=f"legacy{hostile}")
    expression = f"{LEGACY} /* {hostile} */"
    source = dataclasses.replace(cx, source=f"evil{hostile}.json")
    lines = view.render(
        trace, expression, f"checker {hostile}", about=[view.source_line(source)], diff=True
    )
    shown = "\n".join(lines)
    assert text.control_character(shown, allow="\n") is None
    assert lines[1].startswith("rule legacy\\x1b]0;owned\\x07\\x9b2J\\u202e\\n: ")
    assert lines[2].startswith("file evil\\x1b]0;owned\\x07\\x9b2J\\u202e\\n.json (paths")
    assert lines[-1].endswith("reproduce: checker \\x1b]0;owned\\x07\\x9b2J\\u202e\\n")


def test_printable_escapes_every_control_character() -> None:
    controls = [*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), "\u2028"]
    for c in controls:
        assert text.control_character(text.printable(f"a{c}b")) is None, repr(c)
    assert text.printable("tab\there é ✗") == "tab\\there é ✗"
