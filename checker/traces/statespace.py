"""The whole reachable state space as a networkx ``MultiDiGraph``, or streamed to a file.

Nodes are states (``s0``, ``s1``, ... in breadth-first order), with every field as a
scalar attribute, ``depth`` (BFS distance from an initial state), ``initial``,
``violates`` (the state properties it breaks, comma-separated) and ``label`` (the
name, SPTE and TLBs in one line, for graph viewers such as Gephi and yEd). Edges are
steps, keyed by the action (``guest_access@vcpu1``), with ``label`` (the step's
name, ``vcpu1 guest_access``), the operation, vCPU, kernel function, the flush
decision and ``violates`` (the step properties the step breaks).
``on_shortest_path`` marks the BFS edges leading to a violation, the shortest way
there.

With ``symmetric``, states are the vCPU-permutation classes of the explicit
engine (each node stands for ``orbit`` concrete states); otherwise they are the
concrete states.

:func:`explore` keeps the states and, per step, three numbers (source, target and
the kind of step: its key and attributes, shared by the many steps alike), so a
graph of millions of steps takes tens of MB; :func:`node_link_chunks` and
:func:`graphml_chunks` write it as node-link JSON and GraphML without building
the networkx graph, byte for byte what networkx writes for :func:`state_graph`
(the graph of 6 vCPUs has 1.7 million steps: as a ``MultiDiGraph``, 6 GB).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checker.engines import explicit, semantics
from checker.engines.semantics import State, Step
from checker.model import MODEL, PROPERTIES, Kind, System
from checker.traces import view
from checker.traces.graph import action_label, state_attributes

if TYPE_CHECKING:
    import networkx as nx

    StateGraph = nx.MultiDiGraph[str]


@dataclass(frozen=True)
class StepKind:
    """What steps alike share: the edge's key and attributes (in the order networkx
    keeps them, ``on_shortest_path`` aside) and whether the step itself violates a
    step property."""

    key: str
    attributes: tuple[tuple[str, Any], ...]
    violates: bool


@dataclass
class StateSpace:
    """The reachable states and steps of ``system`` with ``vcpus`` vCPUs."""

    exploration: explicit.Exploration
    #: node ``s{i}`` is ``states[i]``
    states: list[State]
    #: step ``j`` goes from ``sources[j]`` to ``targets[j]`` and is of kind
    #: ``kinds[kind_of[j]]``; steps are in the order networkx keeps them in a
    #: ``MultiDiGraph`` (by source, then target, then key, each as first added),
    #: and two steps with the same source, target and key are one edge, as there
    sources: array[int]
    targets: array[int]
    kind_of: array[int]
    kinds: list[StepKind]
    #: the BFS edges (source, target, key) on a shortest path to a violation
    shortest: set[tuple[int, int, str]]
    #: graph attributes (vcpus, symmetric, states, raw_states, and what the caller adds)
    graph: dict[str, Any] = field(default_factory=dict)

    @property
    def symmetric(self) -> bool:
        return self.exploration.symmetric

    def number_of_nodes(self) -> int:
        return len(self.states)

    def number_of_edges(self) -> int:
        return len(self.sources)

    def node_attributes(self, i: int) -> dict[str, Any]:
        reached = self.states[i]
        node = f"s{i}"
        broken = [p.name for p in PROPERTIES if semantics.state_is_bad(p, reached)]
        shape = reached.shape
        sptes = ", ".join(view.spte_text(reached, i) for i in range(shape.sptes))
        tlbs = " ".join(
            reached.tlb(v, g).label for v in range(reached.vcpu_count) for g in range(shape.gfns)
        )
        flags = ", ".join(f"{key} {text}" for key, text in view.gfn_items(reached))
        ad = (
            ("on, PML" if reached.shared.slot.pml else "on")
            if reached.shared.slot.ad_enabled
            else "off"
        )
        label = f"{node}: {sptes}, tlb {tlbs}, {flags}, A/D {ad}"
        if broken:
            label += f", violates {', '.join(broken)}"
        attrs: dict[str, Any] = {
            "label": label,
            **state_attributes(reached),
            "depth": self.exploration.depth[reached],
            "initial": self.exploration.parent[reached] is None,
            "violates": ",".join(broken),
        }
        if self.symmetric:
            attrs["orbit"] = explicit.orbit_size(reached)
        return attrs

    def on_shortest_path(self, j: int) -> bool:
        kind = self.kinds[self.kind_of[j]]
        return kind.violates or (self.sources[j], self.targets[j], kind.key) in self.shortest


def _key(action: semantics.Action) -> str:
    return action.label + (f"@vcpu{action.vcpu}" if action.vcpu is not None else "")


def _kind(step: Step) -> StepKind:
    action = step.action
    broken = [p.name for p in PROPERTIES if p.kind is Kind.STEP and semantics.step_is_bad(p, step)]
    attributes: list[tuple[str, Any]] = [("label", action_label(action)), ("operation", action.op)]
    if action.vcpu is not None:
        attributes.append(("vcpu", action.vcpu))
    out = step.outcome
    attributes += [
        ("kernel_function", step.operation.function),
        ("tlb_flush", out.flush),
        ("rule_consulted", out.rule_consulted),
        ("rule_flush", out.rule_flush if out.rule_consulted else False),
        ("violates", ",".join(broken)),
    ]
    return StepKind(_key(action), tuple(attributes), bool(broken))


def explore(
    system: System,
    vcpus: int,
    symmetric: bool = False,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
) -> StateSpace:
    """The reachable state space; :class:`~checker.engines.explicit.StateBudgetExceeded`
    beyond ``max_states`` states times vCPUs.

    A concrete space is counted first: the exploration up to vCPU symmetry stores a
    fraction of its states (3,276 of 73,262 at 6 vCPUs) and counts each with its
    orbit, which gives the concrete number exactly. One beyond the budget is then
    refused at once with its size (at 6 vCPUs under the default budget: in about a
    second, where exploring the budget's worth of it took 20 s and could only say
    "more than"). One within it costs that count more (a second on the 32 s of
    the 6-vCPU graph); the two explorations share a stepper, so the steps the
    count works out are not worked out again."""
    stepper = explicit.Stepper(system)
    if not symmetric and max_states is not None:
        counted, _ = explicit.explore(system, vcpus, True, max_states=max_states, stepper=stepper)
        if counted.raw_states * vcpus > max_states:
            raise explicit.StateBudgetExceeded(
                max_states, vcpus, False, counted.raw_states, exact=True
            )
    index: dict[State, int] = {}
    states: list[State] = []
    sources, targets, kind_of = array("I"), array("I"), array("I")
    kinds: list[StepKind] = []
    numbers: dict[StepKind, int] = {}
    bad_sources: set[int] = set()
    #: the steps out of the state being expanded, and where each leads
    pending: list[tuple[State, Step, State]] = []
    #: each kind of step by its action and outcome. The exploration's step function
    #: memoises outcomes by what they depend on (the operation, shared state, actor's
    #: record, gfn and parameters: what the window a step property looks at is made
    #: of), so a step with the same action and the same outcome object is of the
    #: same kind. The outcome is kept with its kind: while it is held, no other
    #: object has its id.
    known: dict[tuple[semantics.Action, int], tuple[object, StepKind]] = {}

    def kind_of_step(step: Step) -> StepKind:
        found = known.get((step.action, id(step.outcome)))
        if found is not None and found[0] is step.outcome:
            return found[1]
        kind = _kind(step)
        known[step.action, id(step.outcome)] = (step.outcome, kind)
        return kind

    def number(kind: StepKind) -> int:
        found = numbers.get(kind)
        if found is None:
            found = numbers[kind] = len(kinds)
            kinds.append(kind)
        return found

    def reached(state: State) -> None:
        index[state] = len(states)
        states.append(state)

    def add_pending() -> None:
        # as MultiDiGraph.add_edge does: grouped by target, then key; a second step
        # with the same target and key updates the first one's attributes
        if not pending:
            return
        source = index[pending[0][0]]
        by_target: dict[int, dict[str, int]] = {}
        for _, step, after in pending:
            kind = kind_of_step(step)
            if kind.violates:
                bad_sources.add(source)
            keyed = by_target.setdefault(index[after], {})
            if kind.key in keyed:
                first = kinds[keyed[kind.key]]
                merged = {**dict(first.attributes), **dict(kind.attributes)}
                kind = StepKind(kind.key, tuple(merged.items()), kind.violates)
            keyed[kind.key] = number(kind)
        for target, keyed in by_target.items():
            for k in keyed.values():
                sources.append(source)
                targets.append(target)
                kind_of.append(k)
        pending.clear()

    def taken(parent: State, step: Step, after: State) -> None:
        if pending and pending[0][0] is not parent:
            add_pending()
        pending.append((parent, step, after))

    ex, _ = explicit.explore(
        system,
        vcpus,
        symmetric,
        on_reached=reached,
        max_states=max_states,
        on_step=taken,
        stepper=stepper,
    )
    add_pending()
    # the BFS tree edges into every violating state (or the source of a violating
    # step) are the shortest paths to violations
    shortest: set[tuple[int, int, str]] = set()
    violating = {
        i for i, s in enumerate(states) if any(semantics.state_is_bad(p, s) for p in PROPERTIES)
    }
    for target in violating | bad_sources:
        state = states[target]
        while (link := ex.parent[state]) is not None:
            parent, action, _ = link
            shortest.add((index[parent], index[state], _key(action)))
            state = parent
    space = StateSpace(ex, states, sources, targets, kind_of, kinds, shortest)
    space.graph.update(
        vcpus=vcpus, symmetric=symmetric, states=len(states), raw_states=ex.raw_states
    )
    return space


def state_graph(
    system: System,
    vcpus: int,
    symmetric: bool = False,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
) -> StateGraph:
    """The reachable state space as a graph; :class:`~checker.engines.explicit.
    StateBudgetExceeded` beyond ``max_states`` states times vCPUs (the graph's edges,
    and so its memory, grow with both)."""
    return to_graph(explore(system, vcpus, symmetric, max_states))


def to_graph(space: StateSpace) -> StateGraph:
    """``space`` as a networkx ``MultiDiGraph``."""
    import networkx as nx

    g: StateGraph = nx.MultiDiGraph()
    g.graph.update(space.graph)
    for i in range(space.number_of_nodes()):
        g.add_node(f"s{i}", **space.node_attributes(i))
    for j in range(space.number_of_edges()):
        kind = space.kinds[space.kind_of[j]]
        g.add_edge(
            f"s{space.sources[j]}",
            f"s{space.targets[j]}",
            key=kind.key,
            **dict(kind.attributes),
            on_shortest_path=space.on_shortest_path(j),
        )
    return g


# --- streamed files -----------------------------------------------------------------------

_SOURCE, _TARGET = "\x00source\x00", "\x00target\x00"


def _split(text: str, *tokens: str) -> list[str]:
    """``text`` cut at each of ``tokens`` (each once, in this order)."""
    parts = []
    for token in tokens:
        before, found, text = text.partition(token)
        assert found, token
        parts.append(before)
    return [*parts, text]


def _edge_templates(space: StateSpace, render: Any) -> Iterator[str]:
    """Each edge as ``render(source token, target token, key, attributes)`` makes
    it, with the tokens replaced by the node names: one template per kind of step."""
    templates: dict[tuple[int, bool], list[str]] = {}
    sources, targets, kind_of = space.sources, space.targets, space.kind_of
    for j in range(len(sources)):
        k, marked = kind_of[j], space.on_shortest_path(j)
        parts = templates.get((k, marked))
        if parts is None:
            kind = space.kinds[k]
            attributes = [*kind.attributes, ("on_shortest_path", marked)]
            parts = templates[k, marked] = _split(
                render(kind.key, attributes), render.source, render.target
            )
        yield f"{parts[0]}s{sources[j]}{parts[1]}s{targets[j]}{parts[2]}"


class _NodeLinkEdge:
    """An edge of node-link JSON, as ``json.dumps(..., sort_keys=True, indent=2)``
    writes it inside the ``edges`` list."""

    source = json.dumps(_SOURCE)[1:-1]
    target = json.dumps(_TARGET)[1:-1]

    def __call__(self, key: str, attributes: list[tuple[str, Any]]) -> str:
        item = {**dict(attributes), "source": _SOURCE, "target": _TARGET, "key": key}
        return _indented(json.dumps(item, sort_keys=True, indent=2))


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.split("\n"))


def node_link_chunks(space: StateSpace) -> Iterator[str]:
    """``json.dumps(nx.node_link_data(to_graph(space), edges="edges"), sort_keys=True,
    indent=2) + "\n"``, in pieces, without the graph."""
    edges, nodes = "\x00edges\x00", "\x00nodes\x00"
    top = {"directed": True, "multigraph": True, "graph": space.graph, "edges": edges}
    head, middle, tail = _split(
        json.dumps({**top, "nodes": nodes}, sort_keys=True, indent=2),
        json.dumps(edges),
        json.dumps(nodes),
    )
    yield head
    yield from _list(_edge_templates(space, _NodeLinkEdge()))
    yield middle
    yield from _list(
        _indented(json.dumps({**space.node_attributes(i), "id": f"s{i}"}, sort_keys=True, indent=2))
        for i in range(space.number_of_nodes())
    )
    yield tail + "\n"


def _list(items: Iterator[str]) -> Iterator[str]:
    """A JSON list of the (indented) ``items`` as ``indent=2`` writes it at depth 1."""
    first = True
    for item in items:
        yield ("[\n" if first else ",\n") + item
        first = False
    yield "[]" if first else "\n  ]"


# GraphML as networkx's GraphMLWriter writes it (ElementTree, prettyprinted): <key>s
# declared in reverse order of first use (graph, then node, then edge attributes),
# then the nodes, the edges and last the graph's own <data>.

_GRAPHML = (
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
    'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">'
)
_XML_TYPES: dict[type, str] = {bool: "boolean", int: "long", float: "double", str: "string"}
#: what str.splitlines() splits at besides "\n" ("\r\n" first: one break), in
#: ASCII: networkx's generate_graphml gives the document's lines (in ASCII, as
#: ElementTree writes it) and the CLI joins them with "\n"
_LINE_BREAKS = ("\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")


def _ascii(value: str) -> str:
    """``value`` as ElementTree writes it (in ASCII: other characters as character
    references), each line break as a "\n"."""
    if not value.isascii():
        value = value.encode("ascii", "xmlcharrefreplace").decode("ascii")
    for brk in _LINE_BREAKS:
        if brk in value:
            value = value.replace(brk, "\n")
    return value


def _text(value: str) -> str:
    """Character data as ElementTree escapes it."""
    return _ascii(value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _attribute(value: str) -> str:
    """An attribute value as ElementTree escapes it."""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = value.replace('"', "&quot;").replace("\r", "&#13;").replace("\n", "&#10;")
    return _ascii(value.replace("\t", "&#09;"))


class _Keys:
    """GraphML's <key> ids, made as attributes are first met."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str], str] = {}

    def id(self, name: str, value: Any, scope: str) -> str:
        key = (name, _XML_TYPES[type(value)], scope)
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = f"d{len(self.ids)}"
        return found

    def data(self, attributes: Any, scope: str, indent: str) -> list[str]:
        lines = []
        for name, value in attributes:
            text = _text(str(value))
            key = self.id(str(name), value, scope)
            if text:
                lines.append(f'{indent}<data key="{key}">{text}</data>')
            else:
                lines.append(f'{indent}<data key="{key}" />')
        return lines


class _GraphMLEdge:
    source, target = _SOURCE, _TARGET

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys

    def __call__(self, key: str, attributes: list[tuple[str, Any]]) -> str:
        start = f'    <edge source="{_SOURCE}" target="{_TARGET}" id="{_attribute(key)}"'
        data = self.keys.data(attributes, "edge", "      ")
        if not data:
            return f"{start} />"
        return "\n".join([f"{start}>", *data, "    </edge>"])


def graphml_chunks(space: StateSpace) -> Iterator[str]:
    """``"\n".join(nx.generate_graphml(to_graph(space))) + "\n"``, in pieces, without
    the graph."""
    keys = _Keys()
    graph_data = keys.data(space.graph.items(), "graph", "    ")
    nodes = range(space.number_of_nodes())
    for i in nodes:
        keys.data(space.node_attributes(i).items(), "node", "")
    edge = _GraphMLEdge(keys)
    seen: set[tuple[int, bool]] = set()
    for j in range(space.number_of_edges()):
        k, marked = space.kind_of[j], space.on_shortest_path(j)
        if (k, marked) not in seen:
            seen.add((k, marked))
            kind = space.kinds[k]
            edge(kind.key, [*kind.attributes, ("on_shortest_path", marked)])
    declared = [
        f'  <key id="{key}" for="{scope}" attr.name="{_attribute(name)}" attr.type="{kind}" />'
        for (name, kind, scope), key in reversed(keys.ids.items())
    ]
    yield "\n".join([_GRAPHML, *declared, '  <graph edgedefault="directed">'])
    for i in nodes:
        data = keys.data(space.node_attributes(i).items(), "node", "      ")
        start = f'    <node id="s{i}"'
        yield "\n" + ("\n".join([f"{start}>", *data, "    </node>"]) if data else f"{start} />")
    for text in _edge_templates(space, edge):
        yield "\n" + text
    for line in graph_data:
        yield "\n" + line
    yield "\n  </graph>\n</graphml>\n"


# --- DOT ----------------------------------------------------------------------------------

#: the most steps (edges) written as DOT. Graphviz's dot lays graphs of this model out
#: in time that grows much faster than the steps. Measured with ``time dot -Tsvg``
#: (Graphviz 2.43, a shared 2-core machine; repeated runs varied up to 2x): 2908
#: steps took 1.7 s, 3890 (new, 1 vCPU) 2.9-6.0 s, 4233 (legacy, 1 vCPU) 12.5 s,
#: 4694 5.4 s, 4927 13.5 s, 5859 11 s, 7118 30 s, 8148 (new, 2 vCPUs up to symmetry)
#: 21 s, 9403 (legacy, the same) 35 s; 17378 (legacy, 2 vCPUs) was reported at 422 s, warning
#: "Something is probably seriously wrong". Every shipped rule at 1 vCPU fits.
DOT_MAX_STEPS = 5000


def dot_refusal(g: StateGraph | StateSpace) -> str | None:
    """Why ``g`` is not written as DOT (too many steps for Graphviz to lay out in
    reasonable time), naming what to do instead; None if it may be."""
    steps = g.number_of_edges()
    if steps <= DOT_MAX_STEPS:
        return None
    instead = "write .json or .graphml instead"
    # --symmetric is not offered: at 2 vCPUs it still has over 8000 steps
    if g.graph["vcpus"] > 1:
        instead += ", or shrink the graph with --vcpus 1"
    return (
        f"{g.number_of_nodes()} states and {steps} steps are more than Graphviz lays out "
        f"in reasonable time (DOT is written up to {DOT_MAX_STEPS} steps); {instead}"
    )


#: one colour per operation, in the order of MODEL (every one declared)
PALETTE = (
    "#1f77b4",
    "#17becf",
    "#7f7f7f",
    "#2ca02c",
    "#98df8a",
    "#bcbd22",
    "#8c564b",
    "#9467bd",
    "#e377c2",
    "#000000",
    "#ff7f0e",
    "#ffbb78",
    "#aec7e8",
    "#c5b0d5",
    "#c49c94",
    "#dbdb8d",
)
COLOUR = {op.name: PALETTE[i % len(PALETTE)] for i, op in enumerate(MODEL.operations)}


def to_dot(g: StateGraph) -> str:
    """Graphviz DOT: one rank per BFS depth, initial states filled, edges coloured by
    operation, violating states and the shortest paths to them in red."""
    lines = [
        "digraph statespace {",
        '  graph [rankdir=TB, fontname="monospace"];',
        '  node [shape=box, fontname="monospace", fontsize=9];',
        '  edge [fontname="monospace", fontsize=8];',
    ]
    by_depth: dict[int, list[str]] = {}
    for node, attrs in g.nodes(data=True):
        by_depth.setdefault(attrs["depth"], []).append(node)
    for depth in sorted(by_depth):
        lines.append(f"  {{ rank=same; {'; '.join(by_depth[depth])}; }}")
    for node, attrs in g.nodes(data=True):
        style = ['label="' + _label(attrs) + '"']
        if attrs["initial"]:
            style += ["style=filled", 'fillcolor="#dddddd"']
        if attrs["violates"]:
            style += ['color="red"', 'fontcolor="red"', "penwidth=2"]
        lines.append(f"  {node} [{', '.join(style)}];")
    for source, target, key, attrs in g.edges(keys=True, data=True):
        colour = "red" if attrs["on_shortest_path"] else COLOUR[attrs["operation"]]
        style = [f'label="{key}"', f'color="{colour}"', f'fontcolor="{colour}"']
        if attrs["on_shortest_path"]:
            style.append("penwidth=2")
        lines.append(f"  {source} -> {target} [{', '.join(style)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(attrs: dict[str, Any]) -> str:
    tlbs = " ".join(str(attrs[k]) for k in sorted(attrs) if k.startswith("tlb_vcpu"))
    flags = [
        f
        for f in (
            "write_tracked",
            "dirty_logging",
            "dirty_bit",
            "harvest_flush_pending",
            "enable_flush_pending",
        )
        if attrs[f]
    ]
    parts = [attrs["spte"], f"tlb {tlbs}"]
    if flags:
        parts.append(" ".join(flags))
    if attrs["violates"]:
        parts.append("VIOLATES " + attrs["violates"])
    return "\\n".join(parts)
