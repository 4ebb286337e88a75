"""The whole reachable state space as a networkx ``MultiDiGraph``.

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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checker.engines import explicit, semantics
from checker.engines.semantics import State, Step
from checker.model import OPERATIONS, PROPERTIES, Kind, System
from checker.traces import view
from checker.traces.graph import action_label, state_attributes

if TYPE_CHECKING:
    import networkx as nx

    StateGraph = nx.MultiDiGraph[str]


def state_graph(
    system: System,
    vcpus: int,
    symmetric: bool = False,
    max_states: int | None = explicit.DEFAULT_MAX_STATES,
) -> StateGraph:
    """The reachable state space; :class:`~checker.engines.explicit.StateBudgetExceeded`
    beyond ``max_states`` states times vCPUs (the graph's edges, and so its memory,
    grow with both)."""
    import networkx as nx

    edges: list[tuple[State, Step, State]] = []

    def record(ex: explicit.Exploration, parent: State, step: Step) -> bool:
        after = explicit.canonical(step.after)[0] if symmetric else step.after
        edges.append((parent, step, after))
        return False

    ex, _ = explicit.explore(system, vcpus, symmetric, visit=record, max_states=max_states)
    ids = {state: f"s{i}" for i, state in enumerate(ex.parent)}
    g: StateGraph = nx.MultiDiGraph()
    g.graph.update(vcpus=vcpus, symmetric=symmetric, states=len(ids), raw_states=ex.raw_states)
    for reached, node in ids.items():
        broken = [p.name for p in PROPERTIES if semantics.state_is_bad(p, reached)]
        shape = reached.shape
        sptes = ", ".join(view.spte_text(reached, i) for i in range(shape.sptes))
        tlbs = " ".join(
            reached.tlb(v, g).label for v in range(reached.vcpu_count) for g in range(shape.gfns)
        )
        flags = ", ".join(f"{key} {text}" for key, text in view.gfn_items(reached))
        ad = "on" if reached.shared.slot.ad_enabled else "off"
        label = f"{node}: {sptes}, tlb {tlbs}, {flags}, A/D {ad}"
        if broken:
            label += f", violates {', '.join(broken)}"
        attrs: dict[str, Any] = {
            "label": label,
            **state_attributes(reached),
            "depth": ex.depth[reached],
            "initial": ex.parent[reached] is None,
            "violates": ",".join(broken),
        }
        if symmetric:
            attrs["orbit"] = explicit.orbit_size(reached)
        g.add_node(node, **attrs)
    bad_sources: set[State] = set()
    for parent, step, after in edges:
        broken = [
            p.name for p in PROPERTIES if p.kind is Kind.STEP and semantics.step_is_bad(p, step)
        ]
        if broken:
            bad_sources.add(parent)
        action = step.action
        key = action.label + (f"@vcpu{action.vcpu}" if action.vcpu is not None else "")
        g.add_edge(
            ids[parent],
            ids[after],
            key=key,
            label=action_label(action),
            operation=action.op,
            **({"vcpu": action.vcpu} if action.vcpu is not None else {}),
            kernel_function=step.operation.function,
            tlb_flush=step.outcome.flush,
            rule_consulted=step.outcome.rule_consulted,
            rule_flush=step.outcome.rule_flush if step.outcome.rule_consulted else False,
            violates=",".join(broken),
            on_shortest_path=bool(broken),
        )
    # the BFS tree edges into every violating state (or the source of a violating
    # step) are the shortest paths to violations
    targets = {s for s in ids if g.nodes[ids[s]]["violates"]} | bad_sources
    for target in targets:
        state = target
        while (link := ex.parent[state]) is not None:
            parent, action, _ = link
            key = action.label + (f"@vcpu{action.vcpu}" if action.vcpu is not None else "")
            g.edges[ids[parent], ids[state], key]["on_shortest_path"] = True
            state = parent
    return g


# --- DOT ----------------------------------------------------------------------------------

#: the most steps (edges) written as DOT. Graphviz's dot lays graphs of this model out
#: in time that grows much faster than the steps. Measured with ``time dot -Tsvg``
#: (Graphviz 2.43, a shared 2-core machine; repeated runs varied up to 2x): 2908
#: steps took 1.7 s, 3890 (new, 1 vCPU) 2.9-6.0 s, 4233 (legacy, 1 vCPU) 12.5 s,
#: 4694 5.4 s, 4927 13.5 s, 5859 11 s, 7118 30 s, 8148 (new, 2 vCPUs up to symmetry)
#: 21 s, 9403 (legacy, the same) 35 s; 17378 (legacy, 2 vCPUs) was reported at 422 s, warning
#: "Something is probably seriously wrong". Every shipped rule at 1 vCPU fits.
DOT_MAX_STEPS = 5000


def dot_refusal(g: StateGraph) -> str | None:
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


#: one colour per operation, in the order of OPERATIONS
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
COLOUR = {op.name: PALETTE[i % len(PALETTE)] for i, op in enumerate(OPERATIONS)}


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
