"""The offline HTML viewer: one self-contained file per counterexample.

Layout: a header (the violated property in words, the rule, the setting and the
command that reproduces the trace), the step table of the terminal view with
changed cells highlighted, and below it the TLC-like state graph as inline SVG
beside a detail pane for the current step (the kernel call path, the SPTE before
and after in both layouts, and the rule's expression with each helper's value).

The current step is highlighted in the table and in the graph at once; the arrow
keys (or j/k, Home/End) move it, a click selects it, ``d`` hides unchanged values
as ``checker show --diff`` does. The trace itself is embedded as node-link JSON.

No external resource of any kind: CSS, script, SVG and data are inline, so the
file works offline and makes no network request. The same trace gives the same
bytes.
"""

from __future__ import annotations

import json
from html import escape

from checker.engines.semantics import Step
from checker.model import Flush, Kind
from checker.traces import view
from checker.traces.counterexample import Counterexample
from checker.traces.dot import svg_text

STYLE = """
:root { --ink: #1f2933; --muted: #52606d; --line: #d9e2ec; --current: #dbeafe;
  --accent: #2563eb; --changed: #fff1c2; --bad: #c62828; --set: #1b7f3b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--ink); background: #f8fafc; }
code, table, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
header { padding: 14px 20px 10px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 19px; }
h1 .bad { color: var(--bad); }
.statement { margin: 0 0 8px; color: var(--muted); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
#reproduce { background: #0f172a; color: #e2e8f0; padding: 2px 8px; border-radius: 4px; }
button { font: inherit; font-size: 12px; padding: 1px 8px; }
.toolbar { display: flex; gap: 18px; align-items: center; padding: 8px 20px; color: var(--muted); }
kbd { border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 3px; padding: 0 4px;
  background: #fff; font-size: 11px; }
.table-pane { overflow-x: auto; padding: 0 20px 12px; }
table { border-collapse: collapse; background: #fff; white-space: pre; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.decision, td.gfn { white-space: normal; }
td.decision { min-width: 24em; max-width: 40em; }
td.gfn { min-width: 10em; }
.tok { white-space: nowrap; }
td.lane .function { color: var(--muted); font-size: 11px; }
th { position: sticky; top: 0; background: #eef2f7; font-weight: 600; }
th.lane, td.lane { border-left: 1px solid var(--line); }
tbody tr { cursor: pointer; }
tbody tr:hover td { background: #f1f5f9; }
td.changed { background: var(--changed); }
.set { color: var(--set); font-weight: 700; }
.cleared { color: var(--bad); font-weight: 700; }
.changed-text { font-weight: 700; }
.flush-text { color: var(--accent); font-weight: 700; }
.dim { color: var(--muted); }
tr.violation td.step, .violation-text { color: var(--bad); font-weight: 700; }
tbody tr.current td { background: var(--current); }
tbody tr.current td.changed { background: #fde68a; }
tbody tr.current td:first-child { box-shadow: inset 4px 0 0 var(--accent); }
.diff-view { display: none; }
body.diff .full-view { display: none; }
body.diff .diff-view { display: inline; }
body.diff .constant { display: none; }
.lower { display: grid; grid-template-columns: max-content minmax(360px, 1fr); gap: 16px;
  padding: 0 20px 20px; align-items: start; }
.graph-pane { background: #fff; border: 1px solid var(--line); border-radius: 6px; overflow: auto;
  max-height: calc(100vh - 24px); }
#trace-graph g.node, #trace-graph g.edge { cursor: pointer; }
#trace-graph g.current rect { stroke: var(--accent); stroke-width: 3; fill: #eff6ff; }
#trace-graph g.current path { stroke: var(--accent); stroke-width: 3; }
#trace-graph g.edge.current text { fill: var(--accent); }
.detail { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; }
.detail h2 { margin: 0 0 6px; font-size: 16px; }
.detail.violation { border-color: var(--bad); box-shadow: 0 0 0 1px var(--bad); }
.detail table { white-space: normal; }
.detail td, .detail th { padding: 2px 10px 2px 0; border: 0; position: static; background: none; }
.detail ul { margin: 4px 0; padding-left: 20px; }
.term-true { color: var(--set); } .term-false { color: var(--muted); }
footer { padding: 0 20px 16px; color: var(--muted); font-size: 12px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("#trace tbody tr"));
  var last = rows.length - 1;
  var current = -1;
  function each(selector, f) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), f);
  }
  // the graph pane scrolls on its own, in the height the window has left below the
  // table, so that stepping never scrolls the table out of view
  function fitGraph() {
    var pane = document.querySelector(".graph-pane");
    var room = window.innerHeight - pane.getBoundingClientRect().top - 12;
    pane.style.maxHeight = Math.max(320, room) + "px";
  }
  window.addEventListener("resize", fitGraph);
  fitGraph();
  // scroll the graph pane alone (not the page) so that the current step is in view
  function reveal(pane, element) {
    if (!pane || !element) return;
    var box = pane.getBoundingClientRect(), inner = element.getBoundingClientRect();
    var top = Math.max(box.top, 0), bottom = Math.min(box.bottom, window.innerHeight);
    if (inner.top < top || inner.bottom > bottom) {
      pane.scrollTop += inner.top - top - Math.max(0, (bottom - top - inner.height) / 2);
    }
  }
  function select(k, scroll) {
    k = Math.max(0, Math.min(last, k));
    each(".current", function (e) { e.classList.remove("current"); });
    each(".detail", function (e) { e.hidden = true; });
    rows[k].classList.add("current");
    var node = document.getElementById("step" + k);
    var edge = document.getElementById("edge" + k);
    if (node) node.classList.add("current");
    if (edge) edge.classList.add("current");
    document.getElementById("detail-" + k).hidden = false;
    document.body.setAttribute("data-step", String(k));
    current = k;
    if (scroll) {
      reveal(document.querySelector(".graph-pane"), node);
      var box = rows[k].getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) {
        rows[k].scrollIntoView({block: "nearest"});
      }
    }
    if (history.replaceState) history.replaceState(null, "", "#step=" + k);
  }
  function toggleDiff() {
    var box = document.getElementById("diff");
    box.checked = !box.checked;
    document.body.classList.toggle("diff", box.checked);
  }
  document.getElementById("diff").addEventListener("change", function (e) {
    document.body.classList.toggle("diff", e.target.checked);
  });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    switch (e.key) {
      case "ArrowRight": case "ArrowDown": case "j": select(current + 1, true); break;
      case "ArrowLeft": case "ArrowUp": case "k": select(current - 1, true); break;
      case "Home": select(0, true); break;
      case "End": select(last, true); break;
      case "d": if (e.target.id !== "diff") toggleDiff(); break;
      default: return;
    }
    e.preventDefault();
  });
  rows.forEach(function (row, k) {
    row.addEventListener("click", function () { select(k, false); });
  });
  each("#trace-graph g.node, #trace-graph g.edge", function (g) {
    g.addEventListener("click", function () { select(Number(g.id.replace(/\\D+/, "")), false); });
  });
  document.getElementById("copy").addEventListener("click", function () {
    var text = document.getElementById("reproduce").textContent;
    var done = function () { document.getElementById("copy").textContent = "copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () {});
  });
  var wanted = /step=(\\d+)/.exec(location.hash);
  select(wanted ? Number(wanted[1]) : 0, false);
})();
"""

CLASSES = {
    view.Style.CHANGED: "changed-text",
    view.Style.SET: "set",
    view.Style.CLEARED: "cleared",
    view.Style.VIOLATION: "violation-text",
    view.Style.FLUSH: "flush-text",
    view.Style.DIM: "dim",
}


def _parts(cell: view.Cell, tokens: bool = False) -> str:
    """The cell's parts as HTML; with ``tokens``, each part is kept on one line (flag
    names such as ``harvest-in-flight`` must not break at their hyphens)."""
    out = []
    for part in cell.parts:
        text = escape(part.text)
        css = [c for c in (CLASSES.get(part.style), "tok" if tokens else None) if c]
        if css and part.text.strip():
            out.append(f'<span class="{" ".join(css)}">{text}</span>')
        else:
            out.append(text)
    return "".join(out)


#: columns whose cells are lists of flag names
FLAG_KEYS = ("spte", "gfn")


def table_html(full: view.Table, diff: view.Table) -> str:
    """The step table (``full``), each state cell also holding its text in the diff
    view (``diff``); columns no step changes are marked ``constant``, hidden in the
    diff view."""
    diff_keys = {c.key for c in diff.columns}
    # as in a kernel commit message, the function sits under the operation in the lane
    columns = [c for c in full.columns if c.key != "function"]
    head = []
    for c in columns:
        classes = [c.key]
        if c.group is view.Group.ACTOR:
            classes.append("lane")
        if c.key not in diff_keys:
            classes.append("constant")
        head.append(
            f'<th class="{" ".join(classes)}" title="{escape(c.meaning)}">{escape(c.header)}</th>'
        )
    body = []
    for row, diff_row in zip(full.rows, diff.rows, strict=True):
        cells = []
        function = row.cells.get("function", view.EMPTY)
        for c in columns:
            cell = row.cells.get(c.key, view.EMPTY)
            classes = [c.key]
            if c.group is view.Group.ACTOR:
                classes.append("lane")
            if c.key not in diff_keys:
                classes.append("constant")
            if cell.changed:
                classes.append("changed")
            content = _parts(cell, tokens=c.key in FLAG_KEYS)
            if c.group is view.Group.ACTOR and cell.parts:
                content += f'<br><span class="function">{_parts(function)}</span>'
            elif row.step == 0 and c.key == "vcpu0":
                content = _parts(function)  # "(initial state)"
            if c.group is view.Group.STATE and c.key in diff_keys:
                short = _parts(diff_row.cells.get(c.key, view.EMPTY), tokens=c.key in FLAG_KEYS)
                if short != content:
                    content = (
                        f'<span class="full-view">{content}</span>'
                        f'<span class="diff-view">{short}</span>'
                    )
            cells.append(f'<td class="{" ".join(classes)}">{content}</td>')
        row_classes = "violation" if row.violation else ""
        body.append(
            f'<tr id="row-{row.step}" data-step="{row.step}" class="{row_classes}">'
            + "".join(cells)
            + "</tr>"
        )
    return (
        '<table id="trace"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def _spte_rows(step: Step) -> str:
    before, after = step.before.window(step.action).spte, step.outcome.window.spte
    rows = [("bits", view.spte_bits(before), view.spte_bits(after))]
    for name, layout in (("x86", "x86"), ("EPT", "ept")):
        rows.append((name, view.hex_value(before, layout), view.hex_value(after, layout)))
    out = ["<tr><th></th><th>before</th><th>after</th></tr>"]
    for name, old, new in rows:
        mark = ' class="changed"' if old != new else ""
        out.append(
            f"<tr><th>{escape(name)}</th><td>{escape(old)}</td><td{mark}>{escape(new)}</td></tr>"
        )
    return '<table class="mono">' + "".join(out) + "</table>"


def _terms_html(step: Step, expression: str) -> str:
    from checker.rules.cexpr import parsed

    if not step.outcome.rule_consulted:
        return ""
    window = step.before.window(step.action)
    explanation = parsed(expression).explain(
        window.spte, step.outcome.window.spte, bool(window.slot.ad_enabled)
    )
    items = "".join(
        f"<li><code>{escape(explanation.rule.source(test.span))}</code> = "
        f'<b class="term-{str(value).lower()}">{int(value)}</b></li>'
        for test, value in explanation.terms
    )
    return f"<p>Each test of the rule on this update:</p><ul>{items}</ul>"


def detail_html(cx: Counterexample, k: int) -> str:
    """What happened at step ``k``, in more words than the table has room for."""
    trace = cx.trace
    expression = cx.provenance.expression
    last = k == trace.depth
    classes = "detail violation" if last else "detail"
    parts = [f'<article class="{classes}" id="detail-{k}" data-step="{k}" hidden>']
    if k == 0:
        ad = (
            ("on, PML" if trace.initial.shared.slot.pml else "on")
            if trace.initial.shared.slot.ad_enabled
            else "off"
        )
        parts.append("<h2>Step 0: the initial state</h2>")
        parts.append(
            f"<p>Nothing mapped, cached, tracked or logged; the MMU's A/D bits are {ad}.</p>"
        )
    else:
        step = trace.steps[k - 1]
        op = step.operation
        parts.append(
            f"<h2>Step {k}: <code>{escape(view.actor(step))}</code> "
            f"<code>{escape(step.action.label)}</code></h2>"
        )
        parts.append(f"<p>{escape(op.title)}: <code>{escape(op.function)}</code></p>")
        parts.append(f'<p class="dim">kernel path: <code>{escape(op.path)}</code></p>')
        parts.append(_spte_rows(step))
        flushed = "every vCPU's TLB flushed" if step.outcome.flush else "no TLB flush"
        if op.flush is Flush.NEVER:
            flushed = "this operation never flushes"
        parts.append(f"<p><b>{escape(flushed)}</b></p>")
        decision = view.decision_text(step, expression)
        if decision:
            parts.append(f"<p>rule decision: <code>{escape(decision)}</code></p>")
        parts.append(_terms_html(step, expression))
    if last:
        where = "by this step" if trace.prop.kind is Kind.STEP else "in the state it reaches"
        parts.append(
            f'<p class="violation-text">✗ {escape(trace.prop.name)} violated {where}: '
            f"{escape(trace.prop.statement)}</p>"
        )
    parts.append("</article>")
    return "".join(parts)


def _json_for_script(data: object) -> str:
    """JSON that cannot close the ``<script>`` element it sits in."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html_text(cx: Counterexample) -> str:
    """The viewer for ``cx`` as one HTML document."""
    import networkx as nx

    trace, p = cx.trace, cx.provenance
    prop = trace.prop
    ad = (
        ("on, PML" if trace.initial.shared.slot.pml else "on")
        if trace.initial.shared.slot.ad_enabled
        else "off"
    )
    title = f"{trace.rule_name}: {prop.name} violated in {trace.depth} steps"
    source = f"{cx.source} · " if cx.source else ""
    data = nx.node_link_data(cx.graph(), edges="edges")
    details = "\n".join(detail_html(cx, k) for k in range(trace.depth + 1))
    keys = (
        "<kbd>←</kbd><kbd>→</kbd> or <kbd>↑</kbd><kbd>↓</kbd> (<kbd>j</kbd><kbd>k</kbd>) "
        "step · <kbd>Home</kbd><kbd>End</kbd> first, last · <kbd>d</kbd> hide unchanged"
    )
    full = view.step_table(trace, p.expression)
    diff = view.step_table(trace, p.expression, diff=True)
    legend = "<br>".join(escape(line) for line in view.legend_lines(diff))
    vcpus = f"{trace.vcpus} vCPU{'s' if trace.vcpus != 1 else ''}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kvm-flush-checker {escape(p.checker_version)}">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1><span class="bad">✗ {escape(prop.name)}</span> violated in {trace.depth} steps, \
rule <code>{escape(trace.rule_name)}</code></h1>
<p class="statement">{escape(prop.title)}: {escape(prop.statement)}</p>
<dl class="meta">
<dt>rule</dt><dd><code>{escape(" ".join(p.expression.split()))}</code></dd>
<dt>setting</dt><dd>{vcpus}, A/D bits {ad}, paths {escape(p.era)}</dd>
<dt>reproduce</dt><dd><code id="reproduce">{escape(p.command)}</code> \
<button id="copy" type="button">copy</button></dd>
<dt>trace</dt><dd>{escape(source)}checker {escape(p.checker_version)}, \
z3 {escape(p.z3_version)}; replayed through the step function</dd>
</dl>
</header>
<div class="toolbar"><label><input type="checkbox" id="diff"> hide unchanged values</label>\
<span>{keys}</span></div>
<div class="table-pane">
{table_html(full, diff)}
</div>
<div class="lower">
<div class="graph-pane" aria-label="state graph">
{svg_text(cx, standalone=False)}</div>
<div class="details">
{details}
</div>
</div>
<footer>{legend}</footer>
<script type="application/json" id="trace-data">{_json_for_script(data)}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
