"""The trace as a TLC-like state graph: DOT text, and the same drawing as SVG.

One node per step (the state after it), top to bottom, one rank per step; one
edge per step, labelled with its action (actor, operation, kernel function and
whether it flushed). The violating step, its edge and the state it reaches, is
red. Nodes and edges carry ids ``stepK`` and ``edgeK`` (edge K leads to step K),
so the HTML viewer can highlight them.

The SVG is laid out here rather than by Graphviz: a trace is a chain, so its
layout is a column of boxes, and writing it needs no ``dot`` binary. The DOT text
renders to an equivalent picture with ``dot -Tsvg`` for whoever prefers Graphviz.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from checker.engines.semantics import State, Step
from checker.model import Flush
from checker.traces.counterexample import Counterexample
from checker.traces.view import actor, gfn_items, hex_value, spte_bits

RED = "#c62828"
CHANGED = "#b45309"
INK = "#1f2933"


@dataclass(frozen=True)
class Line:
    text: str
    #: the step changed what this line shows
    changed: bool = False


@dataclass(frozen=True)
class Node:
    step: int
    lines: tuple[Line, ...]
    violation: bool
    tooltip: str


@dataclass(frozen=True)
class Edge:
    step: int
    lines: tuple[Line, ...]
    violation: bool


@dataclass(frozen=True)
class Drawing:
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def _state_lines(state: State) -> list[tuple[str, str]]:
    """(what, text) per line; ``what`` decides whether a step changed the line."""
    shape = state.shape
    lines = []
    for i, spte in enumerate(state.shared.sptes):
        n = "" if shape.sptes == 1 else str(i)
        lines += [
            (f"spte{n}", f"SPTE{n} {spte_bits(spte)}"),
            (f"hex{n}", f"x86 {hex_value(spte, 'x86')} EPT {hex_value(spte, 'ept')}"),
        ]
    tlbs = " ".join(
        f"vcpu{v}={state.tlb(v, g).label}"
        if shape.gfns == 1
        else f"vcpu{v}.{g}={state.tlb(v, g).label}"
        for v in range(state.vcpu_count)
        for g in range(shape.gfns)
    )
    lines.append(("tlb", f"tlb {tlbs}"))
    lines += [(key, f"{key} {text}") for key, text in gfn_items(state)]
    return lines


def _action_lines(step: Step) -> tuple[Line, ...]:
    op = step.operation
    lines = [Line(f"{actor(step)}: {step.action.label}"), Line(op.function)]
    if step.outcome.flush:
        lines.append(Line("flush", changed=True))
    elif op.flush in (Flush.RULE, Flush.DEFERRED):
        lines.append(Line("no flush"))
    return tuple(lines)


def drawing(cx: Counterexample) -> Drawing:
    trace = cx.trace
    last = trace.depth
    nodes = []
    previous: dict[str, str] = {}
    for k, state in enumerate(trace.states):
        lines = [Line(f"step {k}" + (" ✗" if k == last else ""))]
        current = dict(_state_lines(state))
        lines += [Line(text, k > 0 and previous[what] != text) for what, text in current.items()]
        previous = current
        tooltip = "\n".join(text for _, text in _state_lines(state))
        nodes.append(Node(k, tuple(lines), k == last, tooltip))
    edges = tuple(
        Edge(k, _action_lines(step), k == last) for k, step in enumerate(trace.steps, start=1)
    )
    title = (
        f"{trace.rule_name}: {trace.prop.name} violated in {trace.depth} steps; "
        f"reproduce: {cx.provenance.command}"
    )
    return Drawing(title, tuple(nodes), edges)


# --- DOT ----------------------------------------------------------------------------------


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _label(lines: tuple[Line, ...]) -> str:
    """Left-justified lines (``\\l`` ends each one)."""
    body = "".join(line.text.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for line in lines)
    return f'"{body}"'


def dot_text(cx: Counterexample) -> str:
    """The drawing as Graphviz DOT."""
    d = drawing(cx)
    out = [
        "digraph counterexample {",
        f"  graph [id=trace, rankdir=TB, labelloc=t, fontname=monospace, label={_quote(d.title)}];",
        f'  node [shape=box, style=rounded, fontname=monospace, fontsize=10, color="{INK}"];',
        "  edge [fontname=monospace, fontsize=10];",
    ]
    for node in d.nodes:
        red = f', color="{RED}", fontcolor="{RED}", penwidth=2' if node.violation else ""
        out.append(
            f"  step{node.step} [id=step{node.step}, label={_label(node.lines)}, "
            f"tooltip={_quote(node.tooltip)}{red}];"
        )
        out.append(f"  {{ rank=same; step{node.step}; }}")
    for edge in d.edges:
        red = f', color="{RED}", fontcolor="{RED}", penwidth=2' if edge.violation else ""
        out.append(
            f"  step{edge.step - 1} -> step{edge.step} "
            f"[id=edge{edge.step}, label={_label(edge.lines)}{red}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"


# --- SVG ----------------------------------------------------------------------------------

FONT_SIZE = 12
#: advance of one character of a monospace font at FONT_SIZE (DejaVu Sans Mono: 0.602em)
CHAR = 7.3
LINE = 16
PAD = 8
MARGIN = 16
GAP = 14


def _text_width(lines: tuple[Line, ...]) -> float:
    return max(len(line.text) for line in lines) * CHAR


def _texts(lines: tuple[Line, ...], x: float, y: float, colour: str | None) -> str:
    """One ``<text>`` per line; the first line bold; changed lines marked; ``colour``
    overrides every line's colour (the violation)."""
    out = []
    for i, line in enumerate(lines):
        attrs = f'x="{x:.0f}" y="{y + i * LINE:.0f}"'
        if colour is not None:
            attrs += f' fill="{colour}"'
        if line.changed:
            attrs += ' class="changed" font-weight="bold"'
            if colour is None:
                attrs += f' fill="{CHANGED}"'
        elif i == 0:
            attrs += ' font-weight="bold"'
        out.append(f"<text {attrs}>{escape(line.text)}</text>")
    return "".join(out)


def svg_text(cx: Counterexample, standalone: bool = True) -> str:
    """The drawing as SVG: a column of state boxes joined by labelled arrows.

    ``standalone`` adds the XML namespace a ``.svg`` file needs; SVG inlined in HTML
    does without it.
    """
    d = drawing(cx)
    node_width = max(_text_width(n.lines) for n in d.nodes) + 2 * PAD
    label_width = max((_text_width(e.lines) for e in d.edges), default=0.0)
    centre = MARGIN + node_width / 2
    title_height = LINE + GAP
    width = max(MARGIN + node_width + MARGIN, centre + GAP + label_width + MARGIN)
    if standalone:  # inline, the page around the SVG says what it shows
        width = max(width, len(d.title) * CHAR + 2 * MARGIN)
    else:
        title_height = 0
    parts: list[str] = []
    y = MARGIN + title_height
    for node in d.nodes:
        if node.step > 0:
            edge = d.edges[node.step - 1]
            length = max(len(edge.lines) * LINE + GAP, 3 * LINE)
            colour = RED if edge.violation else INK
            classes = "edge violation" if edge.violation else "edge"
            parts.append(
                f'<g id="edge{edge.step}" class="{classes}">'
                f'<path d="M{centre:.0f},{y:.0f} L{centre:.0f},{y + length - 2:.0f}" '
                f'stroke="{colour}" stroke-width="{2 if edge.violation else 1.2}" '
                f'marker-end="url(#{"arrow-red" if edge.violation else "arrow"})"/>'
                + _texts(edge.lines, centre + GAP, y + LINE, RED if edge.violation else None)
                + "</g>"
            )
            y += length
        height = len(node.lines) * LINE + 2 * PAD
        colour = RED if node.violation else INK
        classes = "node violation" if node.violation else "node"
        parts.append(
            f'<g id="step{node.step}" class="{classes}">'
            f"<title>{escape(node.tooltip)}</title>"
            f'<rect x="{MARGIN}" y="{y:.0f}" width="{node_width:.0f}" height="{height}" '
            f'rx="6" fill="#ffffff" stroke="{colour}" '
            f'stroke-width="{2 if node.violation else 1.2}"/>'
            + _texts(node.lines, MARGIN + PAD, y + PAD + LINE - 4, RED if node.violation else None)
            + "</g>"
        )
        y += height
    height = y + MARGIN
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    defs = "".join(
        f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        for name, colour in (("arrow", INK), ("arrow-red", RED))
    )
    caption = (
        f'<text x="{MARGIN}" y="{MARGIN + LINE - 4}" font-weight="bold">{escape(d.title)}</text>'
        if standalone
        else ""
    )
    header = (
        f'<svg{namespace} id="trace-graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" '
        f'font-size="{FONT_SIZE}" fill="{INK}">'
        f"<title>{escape(d.title)}</title><defs>{defs}</defs>{caption}"
    )
    return header + "\n" + "\n".join(parts) + "\n</svg>\n"
