"""The step table and its text: lanes per actor, change marks, the rule's decision."""

from __future__ import annotations

import re

import pytest

from checker import text
from checker.engines.bmc import SmtTrace
from checker.engines.certify import replay
from checker.engines.semantics import Action
from checker.model import System
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
    assert row(table, 3)["vcpu0"] == "page_fault(host_writable)"
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


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        (
            "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)",
            [True, False],
            "is_mmu_writable_spte(old_spte)=1 && !is_writable_pte(new_spte)=1",
        ),
        (
            "(old_spte & PT_WRITABLE_MASK)  &&\n  !(new_spte&shadow_mmu_writable_mask)",
            [True, True],
            "(old_spte & PT_WRITABLE_MASK)=1 && !(new_spte&shadow_mmu_writable_mask)=0",
        ),
        (
            "is_writable_pte(old_spte) || (old_spte ^ new_spte) & BIT_ULL(10)",
            [True, False],
            "is_writable_pte(old_spte)=1 || ((old_spte ^ new_spte) & BIT_ULL(10))=0",
        ),
        (
            "!!is_dirty_spte(old_spte) /* comment */",
            [False],
            "!!is_dirty_spte(old_spte)=0",
        ),
        (
            "(old_spte & PT_WRITABLE_MASK) != (new_spte & PT_WRITABLE_MASK)",
            [True],
            "((old_spte & PT_WRITABLE_MASK) != (new_spte & PT_WRITABLE_MASK))=1",
        ),
    ],
)
def test_annotate_places_each_value_after_its_test(
    expression: str, values: list[bool], expected: str
) -> None:
    from checker.model import Spte
    from checker.rules.cexpr import explain

    t, f = True, False
    _, terms = explain(expression, Spte(t, t, t, t, f, f, f), Spte(t, f, t, t, f, f, f), t)
    assert [term.value for term in terms] == values
    assert view.annotate(expression, [(term.text, term.value) for term in terms]) == expected


def test_annotate_gives_up_rather_than_misplace() -> None:
    assert view.annotate("is_writable_pte(old_spte)", [("is_dirty_spte(old_spte)", True)]) is None
    # an identifier that only contains the test's text is not the test
    assert (
        view.annotate("my_is_writable_pte(old_spte)", [("is_writable_pte(old_spte)", True)]) is None
    )


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
        + "; reproduce: checker check --rule legacy --vcpus 2"
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
