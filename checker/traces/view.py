"""How a counterexample reads: the step table, in kernel terms, and its text.

The table has one row per step, laid out like a race in a kernel commit message:
one column per vCPU plus one for the host, the operation in the actor's column,
then the kernel function, the SPTE (bits by name, hex in the x86 and EPT layouts),
every vCPU's TLB entry, the gfn's flags, whether the step flushed every TLB and the
rule's decision with the value of each helper of its C expression on that update.

A cell is a sequence of styled parts. A value that the step changed reads
``old→new`` (an SPTE bit ``+W`` when set, ``-W`` when cleared), so changes are
visible without colour; colour is added on top, only when asked for. The same
table feeds the terminal (:func:`render`) and the HTML viewer.

Everything here is a pure function from data to text.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from checker.engines.semantics import State, Step
from checker.engines.trace import Trace
from checker.model import (
    FRAME_FIELDS,
    MODEL,
    SLOT_FIELDS,
    SPTE_FIELDS,
    Flush,
    Kind,
    Model,
    Shape,
    Spte,
    spte_value,
)
from checker.model.operation import HOLDS_READ, HOLDS_WRITE
from checker.rules.formula import FIELD_ABBREVIATIONS
from checker.text import one_line, printable

if TYPE_CHECKING:
    from checker.rules.cexpr import Explanation, ParsedRule
    from checker.traces.counterexample import Counterexample

ARROW = "→"
MARK = "✗"
#: marks a hex value the step changed
HEX_CHANGED = "*"


class Style(enum.Enum):
    """What a part of a cell means; the terminal and HTML views each colour it."""

    PLAIN = "plain"
    #: a value the step changed
    CHANGED = "changed"
    #: an SPTE bit the step set
    SET = "set"
    #: an SPTE bit the step cleared
    CLEARED = "cleared"
    #: the step (or state) that violates the property
    VIOLATION = "violation"
    #: a flush of every TLB
    FLUSH = "flush"
    HEADER = "header"
    DIM = "dim"


@dataclass(frozen=True)
class Part:
    text: str
    style: Style = Style.PLAIN


@dataclass(frozen=True)
class Cell:
    parts: tuple[Part, ...] = ()
    #: the step changed this value
    changed: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)

    @staticmethod
    def of(text: str, style: Style = Style.PLAIN, changed: bool = False) -> Cell:
        return Cell((Part(text, style),) if text else (), changed)


EMPTY = Cell()


class Group(enum.Enum):
    """What a column shows: who acted, what they ran, the state, the decision."""

    STEP = "step"
    ACTOR = "actor"
    EVENT = "event"
    STATE = "state"
    DECISION = "decision"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    group: Group
    #: what the column means, for legends and tooltips
    meaning: str = ""


@dataclass(frozen=True)
class Row:
    step: int
    cells: dict[str, Cell]
    violation: bool = False


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    #: state columns left out because no step changes them (diff view): (header, value)
    unchanged: tuple[tuple[str, str], ...] = field(default=())


# --- the state columns --------------------------------------------------------------

SPTE_BIT_NAMES: dict[str, str] = {
    "present": "present",
    "writable": "writable",
    "mmu_writable": "MMU-writable",
    "host_writable": "host-writable",
    "accessed": "accessed",
    "dirty": "dirty",
    "access_tracked": "access-tracked",
}

#: the gfn's flags, by the name the view gives them, and what they mean
GFN_FLAGS: dict[str, tuple[str, str]] = {
    "write_tracked": ("tracked", "write-tracked: the gfn shadows a guest page table"),
    "dirty_logging": ("logging", "dirty logging is on"),
    "dirty_bit": ("dirty-bit", "the gfn's bit in the dirty log (bitmap or ring) is set"),
    "harvest_flush_pending": (
        "harvest-in-flight",
        "a harvest write-protected the SPTE and dropped mmu_lock, but has not flushed yet",
    ),
    "enable_flush_pending": (
        "enable-in-flight",
        "enabling dirty logging write-protected the SPTE and dropped mmu_lock, "
        "but has not flushed yet",
    ),
}


def spte_bits(spte: Spte[bool]) -> str:
    """``P W MW HW`` (the set bits by name), ``-`` for none."""
    names = [FIELD_ABBREVIATIONS[f] for f in SPTE_FIELDS if getattr(spte, f)]
    return " ".join(names) or "-"


def hex_value(spte: Spte[bool], layout: str) -> str:
    """x86: ``0x0e02`` (the low bits the model has); EPT: all 64 bits, ``0x0600000000000802``."""
    if layout == "x86":
        return f"0x{spte_value(spte, 'x86'):04x}"
    return f"0x{spte_value(spte, 'ept'):016x}"


def actor(step: Step) -> str:
    """``vcpu0`` or ``host``."""
    vcpu = step.action.vcpu
    return f"vcpu{vcpu}" if vcpu is not None else "host"


def _spte_flags(state: State, spte: int = 0) -> dict[str, bool]:
    record = state.shared.sptes[spte]
    return {FIELD_ABBREVIATIONS[f]: bool(getattr(record, f)) for f in SPTE_FIELDS}


def _flag(state: State, field: str, gfn: int) -> bool:
    """A memslot field, or gfn ``gfn``'s."""
    if field in FRAME_FIELDS:
        return bool(getattr(state.shared.frames[gfn], field))
    return bool(getattr(state.shared.slot, field))


def _gfn_flags(state: State, gfn: int = 0, fields: Sequence[str] = ()) -> dict[str, bool]:
    """The named flags of gfn ``gfn`` and the memslot (``fields``: all of them)."""
    return {
        name: _flag(state, f, gfn)
        for f, (name, _) in GFN_FLAGS.items()
        if not fields or f in fields
    }


def _locals(state: State, vcpu: int) -> dict[str, bool]:
    return state.locals(vcpu)


def lock_text(state: State) -> str:
    """Who holds ``mmu_lock`` across steps: ``free``, ``vcpu0 write``, ``host read``."""
    return ", ".join(f"{actor} {mode}" for actor, mode in state.lock_holders()) or "free"


def flags_cell(before: dict[str, bool] | None, after: dict[str, bool], diff: bool) -> Cell:
    """The flags that are set, by name; ``+x`` for one the step set, ``-x`` for one it
    cleared; ``-`` if none is set. In the diff view, only the changed flags."""
    parts: list[Part] = []
    for name, new in after.items():
        old = None if before is None else before[name]
        if old is None or old == new:
            if new and not diff:
                parts.append(Part(name))
        elif new:
            parts.append(Part(f"+{name}", Style.SET))
        else:
            parts.append(Part(f"-{name}", Style.CLEARED))
    changed = before is not None and before != after
    if not parts:
        return EMPTY if diff and before is not None else Cell.of("-")
    spaced: list[Part] = []
    for i, part in enumerate(parts):
        if i:
            spaced.append(Part(" "))
        spaced.append(part)
    return Cell(tuple(spaced), changed)


def value_cell(old: str | None, new: str, diff: bool) -> Cell:
    """``new``, or ``old→new`` if the step changed it; blank in the diff view if not."""
    if old is None:
        return Cell.of(new)
    if old == new:
        return EMPTY if diff else Cell.of(new)
    return Cell.of(f"{old}{ARROW}{new}", Style.CHANGED, changed=True)


def hex_cell(old: str | None, new: str, diff: bool) -> Cell:
    """``new``, marked ``new*`` if the step changed it (hex values are too long to
    show twice); blank in the diff view if not."""
    if old is None:
        return Cell.of(new)
    if old == new:
        return EMPTY if diff else Cell.of(new)
    return Cell((Part(new, Style.CHANGED), Part(HEX_CHANGED, Style.CHANGED)), changed=True)


@dataclass(frozen=True)
class StateColumn:
    """A state column: its value in a state, and its cell for a step."""

    column: Column
    value: Callable[[State], str]
    cell: Callable[[State | None, State, bool], Cell]


def state_columns(
    vcpus: int, shape: Shape | None = None, model: Model = MODEL
) -> tuple[StateColumn, ...]:
    """Per SPTE its bits, x86 hex and EPT hex; one TLB column per vCPU and gfn; the
    gfn's and the memslot's flags; when the model has them, who holds ``mmu_lock``
    across steps and each vCPU's locals."""
    shape = shape or Shape()

    def flags(
        read: Callable[[State], dict[str, bool]],
    ) -> Callable[[State | None, State, bool], Cell]:
        return lambda before, after, diff: flags_cell(
            None if before is None else read(before), read(after), diff
        )

    def words(
        read: Callable[[State], str], make: Callable[[str | None, str, bool], Cell]
    ) -> Callable[[State | None, State, bool], Cell]:
        return lambda before, after, diff: make(
            None if before is None else read(before), read(after), diff
        )

    def set_flags(read: Callable[[State], dict[str, bool]]) -> Callable[[State], str]:
        return lambda s: " ".join(n for n, on in read(s).items() if on) or "-"

    columns: list[StateColumn] = []
    bits = ", ".join(f"{FIELD_ABBREVIATIONS[f]} {SPTE_BIT_NAMES[f]}" for f in SPTE_FIELDS)
    for i in range(shape.sptes):
        n = "" if shape.sptes == 1 else str(i)
        at = "" if shape.sptes == 1 else f":{i}"
        which = "the leaf SPTE" if shape.sptes == 1 else f"leaf SPTE {i}"

        def spte_flags(s: State, i: int = i) -> dict[str, bool]:
            return _spte_flags(s, i)

        def bits_text(s: State, i: int = i) -> str:
            return spte_bits(s.shared.sptes[i])

        def x86(s: State, i: int = i) -> str:
            return hex_value(s.shared.sptes[i], "x86")

        def ept(s: State, i: int = i) -> str:
            return hex_value(s.shared.sptes[i], "ept")

        columns += [
            StateColumn(
                Column(f"spte{n}", f"SPTE{n}", Group.STATE, f"{which}'s bits: {bits}"),
                bits_text,
                flags(spte_flags),
            ),
            StateColumn(
                Column(
                    f"x86{n}", f"x86{at}", Group.STATE, f"{which} in hex, x86 (shadow/NPT) layout"
                ),
                x86,
                words(x86, hex_cell),
            ),
            StateColumn(
                Column(f"ept{n}", f"EPT{at}", Group.STATE, f"{which} in hex, EPT layout"),
                ept,
                words(ept, hex_cell),
            ),
        ]
    for v in range(vcpus):
        for g in range(shape.gfns):
            key = f"tlb{v}" if shape.gfns == 1 else f"tlb{v}.{g}"
            of = "" if shape.gfns == 1 else f" for gfn {g}"

            def tlb(s: State, v: int = v, g: int = g) -> str:
                return s.tlb(v, g).label

            columns.append(
                StateColumn(
                    Column(key, key, Group.STATE, f"vCPU {v}'s TLB entry{of}: none, ro, rw or rwd"),
                    tlb,
                    words(tlb, value_cell),
                )
            )
    if shape.gfns == 1:
        meaning = "; ".join(f"{name}: {what}" for name, what in GFN_FLAGS.values())
        columns.append(
            StateColumn(
                Column("gfn", "gfn", Group.STATE, f"the gfn's flags ({meaning})"),
                set_flags(_gfn_flags),
                flags(_gfn_flags),
            )
        )
    else:
        for g in range(shape.gfns):

            def frame(s: State, g: int = g) -> dict[str, bool]:
                return _gfn_flags(s, g, FRAME_FIELDS)

            meaning = "; ".join(f"{GFN_FLAGS[f][0]}: {GFN_FLAGS[f][1]}" for f in FRAME_FIELDS)
            columns.append(
                StateColumn(
                    Column(f"gfn{g}", f"gfn{g}", Group.STATE, f"gfn {g}'s flags ({meaning})"),
                    set_flags(frame),
                    flags(frame),
                )
            )

        def slot(s: State) -> dict[str, bool]:
            return _gfn_flags(s, 0, SLOT_FIELDS)

        meaning = "; ".join(f"{n}: {w}" for f, (n, w) in GFN_FLAGS.items() if f in SLOT_FIELDS)
        columns.append(
            StateColumn(
                Column("slot", "slot", Group.STATE, f"the memslot's flags ({meaning})"),
                set_flags(slot),
                flags(slot),
            )
        )
    if any(x in model.locals for x in (HOLDS_READ, HOLDS_WRITE)):
        columns.append(
            StateColumn(
                Column("lock", "mmu_lock", Group.STATE, "who holds mmu_lock across steps"),
                lock_text,
                words(lock_text, value_cell),
            )
        )
    if model.locals:
        for v in range(vcpus):

            def local(s: State, v: int = v) -> dict[str, bool]:
                return _locals(s, v)

            names = ", ".join(f"{x.name}: {x.doc}" for x in model.locals)
            columns.append(
                StateColumn(
                    Column(
                        f"local{v}", f"local{v}", Group.STATE, f"vCPU {v}'s locals set ({names})"
                    ),
                    set_flags(local),
                    flags(local),
                )
            )
    return tuple(columns)


def in_flight(state: State) -> bool:
    """A flush that KVM issues after dropping mmu_lock is pending."""
    slot = state.shared.slot
    return bool(slot.harvest_flush_pending or slot.enable_flush_pending)


# --- the rule's decision ----------------------------------------------------------------


def annotate(explanation: Explanation) -> str:
    """The rule's expression with each atomic test followed by its value on the
    update, e.g. ``is_mmu_writable_spte(old_spte)=1 && !is_writable_pte(new_spte)=1``;
    comments dropped and runs of white space as one space.

    Each value is placed where the parser found its test
    (:class:`checker.rules.cexpr.Test`), never by searching the text. The ``!``s
    applied to a test are folded into it, with the value negated, so each conjunct
    or disjunct shows its own truth (``!is_writable_pte(new_spte)=1``); an operator
    test that no parentheses of its own enclose is shown in parentheses, so that the
    value reads as the whole test's (``(old_spte & PT_WRITABLE_MASK)=1``).
    """
    from checker.rules.cexpr import strip_comments

    # comments blanked in place: the tests' offsets hold
    text = strip_comments(explanation.rule.text)
    out: list[str] = []
    cursor = 0

    def insert(at: int, mark: str) -> None:
        nonlocal cursor
        out.append(text[cursor:at])
        out.append(mark)
        cursor = at

    for test, value in explanation.terms:
        bare = test.operator and test.group == test.span
        if bare:
            insert(test.span.start, "(")
            insert(test.span.end, ")")
        insert(test.shown.end, f"={int(value != test.negated)}")
    out.append(text[cursor:])
    return " ".join("".join(out).split())


def decision_text(step: Step, expression: str | ParsedRule) -> str:
    """Why the step flushed every TLB or did not, in terms of the rule's expression
    (its text, or the text parsed)."""
    from checker.rules.cexpr import parsed

    op = step.operation
    out = step.outcome
    if op.flush is Flush.NEVER:
        return ""
    if op.flush is Flush.ALWAYS:
        return "always flushes"
    window = step.before.window(step.action)
    before, after = window.spte, step.outcome.window.spte
    later = ""
    if op.flush is Flush.DEFERRED and in_flight(step.after):
        later = "the caller flushes after unlock"
    if not out.rule_consulted:
        why = "the old SPTE is not present" if not before.present else "the SPTE does not change"
        return f"rule not consulted: {why}" + (f"; {later}" if later else "")
    rule = parsed(expression) if isinstance(expression, str) else expression
    annotated = annotate(rule.explain(before, after, bool(window.slot.ad_enabled)))
    answer = "flush" if out.rule_flush else "no flush"
    text = f"{annotated} {ARROW} {answer}"
    if op.flush is Flush.DEFERRED:
        text += ", ignored by the caller" + (f": {later}" if later else "")
    return text


def flush_text(step: Step) -> str:
    """``yes`` if every TLB was flushed, ``no`` for a step that could have, else blank."""
    if step.outcome.flush:
        return "yes"
    return "" if step.operation.flush is Flush.NEVER else "no"


# --- the table --------------------------------------------------------------------------


def step_table(trace: Trace, expression: str, diff: bool = False) -> Table:
    """The trace as a table; with ``diff``, only what each step changed (step 0 in full),
    and state columns no step changes are left out and listed in ``unchanged``."""
    lanes = [f"vcpu{v}" for v in range(trace.vcpus)] + ["host"]
    columns: list[Column] = [Column("step", "step", Group.STEP, "the step number")]
    columns += [
        Column(lane, lane, Group.ACTOR, f"what {lane} does at this step")
        if lane != "host"
        else Column("host", "host", Group.ACTOR, "what KVM does outside any vCPU")
        for lane in lanes
    ]
    columns.append(Column("function", "kernel function", Group.EVENT, "the kernel function"))
    states = state_columns(trace.vcpus, trace.initial.shape, trace.initial.model)
    violation_kind = trace.prop.kind
    shown_states = list(states)
    unchanged: list[tuple[str, str]] = []
    if diff:
        shown_states = []
        for sc in states:
            values = {sc.value(s) for s in trace.states}
            if len(values) > 1:
                shown_states.append(sc)
            else:
                unchanged.append((sc.column.header, sc.value(trace.initial)))
    columns += [sc.column for sc in shown_states]
    columns.append(Column("flush", "flush", Group.DECISION, "the step flushed every vCPU's TLB"))
    columns.append(
        Column(
            "decision",
            "rule decision",
            Group.DECISION,
            "the rule's expression, each test with its value on this update",
        )
    )

    rows: list[Row] = []
    first = trace.initial
    cells: dict[str, Cell] = {"step": Cell.of("0")}
    cells["function"] = Cell.of("(initial state)", Style.DIM)
    for sc in shown_states:
        cells[sc.column.key] = sc.cell(None, first, diff)
    rows.append(Row(0, cells))
    last = trace.depth
    for i, step in enumerate(trace.steps, start=1):
        violation = i == last
        number = f"{i} {MARK}" if violation else str(i)
        cells = {"step": Cell.of(number, Style.VIOLATION if violation else Style.PLAIN)}
        action_style = Style.VIOLATION if violation and violation_kind is Kind.STEP else Style.PLAIN
        cells[actor(step)] = Cell.of(step.action.label, action_style)
        cells["function"] = Cell.of(step.operation.function)
        for sc in shown_states:
            cells[sc.column.key] = sc.cell(step.before, step.after, diff)
        flushed = flush_text(step)
        cells["flush"] = Cell.of(flushed, Style.FLUSH if flushed == "yes" else Style.PLAIN)
        cells["decision"] = Cell.of(printable(decision_text(step, expression)))
        rows.append(Row(i, cells, violation))
    return Table(tuple(columns), tuple(rows), tuple(unchanged))


# --- text ---------------------------------------------------------------------------------

Painter = Callable[[str, Style], str]


def plain(text: str, style: Style) -> str:
    return text


def ansi(text: str, style: Style) -> str:
    """Colour for a terminal: changes in yellow, set bits green, cleared bits and the
    violation red, flushes cyan."""
    import click

    styles: dict[Style, dict[str, object]] = {
        Style.CHANGED: {"fg": "yellow", "bold": True},
        Style.SET: {"fg": "green", "bold": True},
        Style.CLEARED: {"fg": "red", "bold": True},
        Style.VIOLATION: {"fg": "red", "bold": True},
        Style.FLUSH: {"fg": "cyan", "bold": True},
        Style.HEADER: {"bold": True},
        Style.DIM: {"dim": True},
    }
    if style not in styles:
        return text
    return click.style(text, **styles[style])  # type: ignore[arg-type]


def table_lines(table: Table, paint: Painter = plain) -> list[str]:
    """The table as aligned text: a header, a rule of dashes under it (as in a kernel
    commit message), then one line per step."""
    keys = [c.key for c in table.columns]
    headers = {c.key: c.header for c in table.columns}
    widths = {
        k: max([len(headers[k])] + [len(r.cells.get(k, EMPTY).text) for r in table.rows])
        for k in keys
    }

    def line(cells: list[tuple[str, int]]) -> str:
        """``cells``: (painted text, visible width), one per column."""
        padded = [text + " " * (widths[k] - n) for k, (text, n) in zip(keys, cells, strict=True)]
        return "  ".join(padded).rstrip()

    lines = [
        line([(paint(headers[k], Style.HEADER), len(headers[k])) for k in keys]),
        line([("-" * len(headers[k]), len(headers[k])) for k in keys]),
    ]
    for row in table.rows:
        cells = [row.cells.get(k, EMPTY) for k in keys]
        lines.append(line([(paint_cell(c, paint), len(c.text)) for c in cells]))
    return lines


def paint_cell(cell: Cell, paint: Painter) -> str:
    """The cell's text, each run of parts in one style painted once."""
    out: list[str] = []
    run: list[str] = []
    style: Style | None = None
    for part in cell.parts:
        if part.style is not style and run:
            out.append(paint("".join(run), style or Style.PLAIN))
            run = []
        style = part.style
        run.append(part.text)
    if run:
        out.append(paint("".join(run), style or Style.PLAIN))
    return "".join(out)


def legend_lines(table: Table) -> list[str]:
    """What the abbreviations and markers mean."""
    spte = ", ".join(f"{FIELD_ABBREVIATIONS[f]} {SPTE_BIT_NAMES[f]}" for f in SPTE_FIELDS)
    # the memslot has a column of its own only when there are several gfns (the diff
    # view may have left it out as unchanged)
    keys = {c.key for c in table.columns} | {header for header, _ in table.unchanged}
    if "slot" not in keys:
        flags = [
            "gfn    tracked: write-tracked; logging: dirty logging on; "
            "dirty-bit: set in the dirty log;",
            "       harvest-in-flight, enable-in-flight: write-protected, unlocked, "
            "not flushed yet",
        ]
        tlb = "tlbN   vCPU N's TLB entry: "
    else:
        # several gfns: each has its own flags and its own TLB entry per vCPU
        flags = [
            "gfnG   gfn G's flags: tracked: write-tracked; dirty-bit: set in the dirty log",
            "slot   logging: dirty logging on; harvest-in-flight, enable-in-flight: "
            "write-protected, unlocked, not flushed yet",
        ]
        tlb = "tlbN.G vCPU N's TLB entry for gfn G: "
    lines = [
        f"SPTE   {spte}",
        *flags,
        f"{tlb}none, ro (read-only), rw (writable) or rwd (writable, dirty cached); "
        "flush: every vCPU's TLB flushed",
        f"marks  +x set, -x cleared, a{ARROW}b changed, {HEX_CHANGED} hex value changed, "
        f"{MARK} the violation",
    ]
    if table.unchanged:
        lines.append(
            "same   " + ", ".join(f"{h}={v}" for h, v in table.unchanged) + " at every step"
        )
    return lines


def render(
    trace: Trace,
    expression: str,
    command: str,
    about: Sequence[str] = (),
    diff: bool = False,
    paint: Painter = plain,
    legend: bool = True,
    ascii: bool = False,
) -> list[str]:
    """The whole text view of a counterexample.

    A title, the rule, the ``about`` lines (where the trace comes from), the step
    table, a legend (unless ``legend`` is false); the last line names the violated
    property in words and the command that reproduces the trace. With ``ascii``, the
    marks ``→`` and ``✗`` are spelled ``->`` and ``X``.
    """
    prop = trace.prop
    slot = trace.initial.shared.slot
    ad = ("on, PML" if slot.pml else "on") if slot.ad_enabled else "off"
    vcpus = f"{trace.vcpus} vCPU{'s' if trace.vcpus != 1 else ''}"
    name = prop.name if prop.title == prop.name else f"{prop.name} ({prop.title})"
    title = (
        f"{name} violated in {trace.depth} "
        f"step{'s' if trace.depth != 1 else ''} with {vcpus}, A/D bits {ad}"
    )
    table = step_table(trace, expression, diff)
    if ascii:
        table = ascii_table(table)
    # the rule, the command and the about lines may come from a file: shown, not obeyed
    rule = f"rule {printable(trace.rule_name)}: {one_line(expression)}"
    lines = [paint(title, Style.HEADER), rule]
    lines += [printable(line) for line in about]
    lines.append("")
    lines += table_lines(table, paint)
    lines.append("")
    if legend:
        lines += [_ascii(line) if ascii else line for line in legend_lines(table)]
    mark = ASCII_MARKS[MARK] if ascii else MARK
    verdict = paint(f"{mark} {prop.name} violated at step {trace.depth}:", Style.VIOLATION)
    lines.append(f"{verdict} {prop.statement}; reproduce: {printable(command)}")
    return lines


def use_colour(flag: bool | None, is_terminal: bool, environ: Mapping[str, str]) -> bool:
    """Colour if asked for (``--color``/``--no-color``), else only on a terminal and
    when ``NO_COLOR`` is unset or empty (https://no-color.org)."""
    if flag is not None:
        return flag
    return is_terminal and not environ.get("NO_COLOR")


def source_line(cx: Counterexample) -> str:
    """Where a counterexample read from a file comes from."""
    p = cx.provenance
    return (
        f"file {cx.source} (paths: {p.era}; checker {p.checker_version}, z3 {p.z3_version}), "
        "replayed through the step function"
    )


#: what the marks become on a stream that cannot encode them (e.g. a latin-1 terminal)
ASCII_MARKS = {ARROW: "->", MARK: "X"}


def _ascii(text: str) -> str:
    for mark, spelled in ASCII_MARKS.items():
        text = text.replace(mark, spelled)
    return text


def ascii_table(table: Table) -> Table:
    """``table`` with its marks spelled in ASCII (before layout, so columns align)."""
    rows = tuple(
        Row(
            r.step,
            {
                k: Cell(tuple(Part(_ascii(p.text), p.style) for p in c.parts), c.changed)
                for k, c in r.cells.items()
            },
            r.violation,
        )
        for r in table.rows
    )
    return Table(table.columns, rows, table.unchanged)


def needs_ascii(encoding: str | None) -> bool:
    """The stream's encoding cannot write the view's marks (``→``, ``✗``)."""
    try:
        "".join(ASCII_MARKS).encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return True
    return False


# --- short forms, for summaries and other formats --------------------------------------------


def spte_label(spte: Spte[bool]) -> str:
    """``0x0e02 P W MW HW`` (hex in the x86 layout, then the set bits by name)."""
    return f"{hex_value(spte, 'x86')} {spte_bits(spte)}"


def spte_text(state: State, spte: int = 0) -> str:
    """:func:`spte_label` of a state's SPTE ``spte``."""
    return spte_label(state.shared.sptes[spte])


def gfn_flags(state: State, gfn: int = 0) -> str:
    """Gfn ``gfn``'s and the memslot's other state as named flags, ``-`` when none
    is set."""
    return " ".join(name for name, on in _gfn_flags(state, gfn).items() if on) or "-"


def gfn_items(state: State) -> list[tuple[str, str]]:
    """The gfns' and the memslot's flags, as short (key, text) pairs: ``gfn`` with
    one gfn, else ``gfn0``, ``gfn1`` ... and ``slot``."""
    if state.shape.gfns == 1:
        return [("gfn", gfn_flags(state))]
    items = [(f"gfn{g}", _set(_gfn_flags(state, g, FRAME_FIELDS))) for g in range(state.shape.gfns)]
    return [*items, ("slot", _set(_gfn_flags(state, 0, SLOT_FIELDS)))]


def state_items(state: State) -> list[tuple[str, str]]:
    """The whole state as short (key, text) pairs: each SPTE (``spte``, or
    ``spte0``...), each TLB entry (``tlb0``, or ``tlb0.1`` per gfn), the flags
    (:func:`gfn_items`) and each vCPU's locals (``local0``) when the model has any."""
    shape = state.shape
    items = [
        ("spte" if shape.sptes == 1 else f"spte{i}", spte_text(state, i))
        for i in range(shape.sptes)
    ]
    for v in range(state.vcpu_count):
        for g in range(shape.gfns):
            key = f"tlb{v}" if shape.gfns == 1 else f"tlb{v}.{g}"
            items.append((key, state.tlb(v, g).label))
    items += gfn_items(state)
    if any(x in state.model.locals for x in (HOLDS_READ, HOLDS_WRITE)):
        items.append(("mmu_lock", lock_text(state)))
    if state.model.locals:
        items += [(f"local{v}", _set(_locals(state, v))) for v in range(state.vcpu_count)]
    return items


def _set(flags: Mapping[str, bool]) -> str:
    return " ".join(name for name, on in flags.items() if on) or "-"


def table_cells(table: Table) -> list[list[str]]:
    """The table as plain strings: a header row, then one row per step (for formats
    that lay cells out themselves, e.g. Markdown)."""
    header = [c.header for c in table.columns]
    rows = [
        [paint_cell(r.cells.get(c.key, EMPTY), plain) for c in table.columns] for r in table.rows
    ]
    return [header, *rows]
