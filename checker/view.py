"""Plain-text rendering of results: the per-step table of a counterexample.

Pure functions from values to lines of text; ``checker.cli`` decides where they go.
"""

from __future__ import annotations

from checker.formula import FIELD_ABBREVIATIONS
from checker.model import SPTE_FIELDS, Flush, Spte, spte_value
from checker.semantics import State, Step
from checker.trace import Trace


def spte_text(state: State) -> str:
    """``0x0e02 P W MW HW`` (hex in the x86 layout, then the set bits by name)."""
    return spte_label(state.gfn.spte)


def spte_label(spte: Spte[bool]) -> str:
    """``0x0e02 P W MW HW`` (hex in the x86 layout, then the set bits by name)."""
    bits = [FIELD_ABBREVIATIONS[f] for f in SPTE_FIELDS if getattr(spte, f)]
    return f"0x{spte_value(spte):04x} {' '.join(bits) if bits else '-'}"


def gfn_flags(state: State) -> str:
    """The gfn's other state, as short flags."""
    g = state.gfn
    flags = [
        ("tracked", g.write_tracked),
        ("logging", g.dirty_logging),
        ("dirty", g.dirty_bit),
        ("harvest-flush-pending", g.harvest_flush_pending),
        ("enable-flush-pending", g.enable_flush_pending),
    ]
    return " ".join(name for name, on in flags if on) or "-"


def decision_text(step: Step) -> str:
    """What the rule decided on this step, and whether it counted."""
    out = step.outcome
    if not out.rule_consulted:
        return "-"
    answer = "flush" if out.rule_flush else "no flush"
    if step.action.operation.flush is Flush.DEFERRED:
        return f"rule: {answer} (ignored)"
    return f"rule: {answer}"


def step_table(trace: Trace) -> list[str]:
    """One row per step: the acting vCPU, the operation, the SPTE, every TLB entry,
    the gfn's flags, the rule's decision and whether every TLB was flushed."""
    rows = step_rows(trace)
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def step_rows(trace: Trace) -> list[list[str]]:
    """The cells of :func:`step_table`: a header row, then the initial state and
    one row per step."""
    tlb_headers = [f"tlb{v}" for v in range(trace.vcpus)]
    header = [
        "step",
        "vcpu",
        "operation",
        "function",
        "SPTE (x86)",
        *tlb_headers,
        "gfn",
        "rule",
        "flush",
    ]
    rows = [header]

    def tlbs(state: State) -> list[str]:
        return [t.label for t in state.tlbs]

    first = trace.initial
    ad = "A/D bits on" if first.gfn.ad_enabled else "A/D bits off"
    rows.append(
        ["0", "", f"(initial, {ad})", "", spte_text(first), *tlbs(first), gfn_flags(first), "", ""]
    )
    for i, step in enumerate(trace.steps, start=1):
        op = step.action.operation
        vcpu = f"vcpu{step.action.vcpu}" if step.action.vcpu is not None else "host"
        rows.append(
            [
                str(i),
                vcpu,
                step.action.label,
                op.function,
                spte_text(step.after),
                *tlbs(step.after),
                gfn_flags(step.after),
                decision_text(step),
                "FLUSH" if step.outcome.flush else "",
            ]
        )
    return rows
