"""Counterexample traces as networkx graphs, and their files.

A trace of k steps is a ``DiGraph`` on nodes ``0..k`` (steps, not states: a trace
may revisit a state). Every attribute is a scalar so that GraphML can hold it:

* node: ``step``, ``label`` (``step 2: vcpu0 guest_access``: the step that led
  here, for graph viewers such as Gephi and yEd), every value of the state by its
  vocabulary name (:mod:`checker.traces.fields`: each SPTE, memslot and gfn field,
  ``tlb_vcpu<i>`` as ``none``/``ro``/``rw``, each vCPU's locals, ``spte`` in hex),
  ``violation`` (the property fails here);
* edge ``(i-1, i)``: ``label`` (``vcpu0 guest_access``), ``operation``, ``vcpu``
  (absent for host-side operations), ``gfn`` (with several gfns, for an operation
  on one), the operation's parameters, ``kernel_function``, ``kernel_path``,
  ``flush_policy``, the rule's decision (``rule_consulted``, ``rule_flush``,
  ``old_spte``, ``new_spte``: the target SPTE's), ``tlb_flush`` (every TLB was
  flushed) and ``violation``;
* graph: ``schema``, rule, expression, property, vCPUs, the shape (``gfns``,
  ``spte_of``, and ``huge`` when a 2M SPTE maps them), depth, the paths around the
  rule (``era`` and one attribute per path), versions and the command that
  reproduces the trace.

Format ``checker.counterexample/4`` (4: the eras' huge-page choices among the
paths); a file of an earlier version is refused with a line naming its version.

Files are node-link JSON (``edges="edges"``, sorted keys) and GraphML, written
atomically, byte-identical for the same trace and versions.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker.engines import semantics
from checker.engines.trace import Trace, spte_hex
from checker.errors import InputError, quoted
from checker.limits import MAX_DEPTH, MAX_GFNS, MAX_VCPUS
from checker.model import PROPERTY_BY_NAME, Kind, Model, Paths, Property, Reach, Shape
from checker.model.declaration import model_for
from checker.rules.specs import paths_from, paths_table
from checker.traces.fields import (
    shape_from_values,
    shape_values,
    state_from_values,
    state_values,
)

if TYPE_CHECKING:
    import networkx as nx

    #: a trace: nodes are step numbers
    TraceGraph = nx.DiGraph[int]

SCHEMA = "checker.counterexample/4"
#: earlier formats, refused by name
OLD_SCHEMAS = (
    "checker.counterexample/1",
    "checker.counterexample/2",
    "checker.counterexample/3",
)


@dataclass(frozen=True)
class Provenance:
    """Where a trace comes from; recorded in its files."""

    expression: str
    command: str
    checker_version: str
    z3_version: str
    #: the paths' label: a era name, plus any overrides
    era: str = "default"


def state_attributes(state: semantics.State) -> dict[str, Any]:
    return state_values(state)


def action_label(action: semantics.Action) -> str:
    """The step's name as graph viewers show it: ``vcpu0 guest_access``,
    ``host mark_spte_for_access_track``, ``vcpu1 sync_spte(!guest_writable)``."""
    actor = "host" if action.vcpu is None else f"vcpu{action.vcpu}"
    return f"{actor} {action.label}"


def step_attributes(step: semantics.Step) -> dict[str, Any]:
    op = step.operation
    out = step.outcome
    attrs: dict[str, Any] = {
        "label": action_label(step.action),
        "operation": op.name,
        "title": op.title,
        "kernel_function": op.function,
        "kernel_path": op.path,
        "flush_policy": op.flush.value,
        "rule_consulted": out.rule_consulted,
        "rule_flush": out.rule_flush if out.rule_consulted else False,
        "old_spte": spte_hex(step.before, spte=out.window.spte_index),
        "new_spte": spte_hex(step.after, spte=out.window.spte_index),
        "tlb_flush": out.flush,
    }
    if step.action.vcpu is not None:
        attrs["vcpu"] = step.action.vcpu
    if step.action.gfn is not None:
        attrs["gfn"] = step.action.gfn
    attrs.update({f"param_{name}": value for name, value in step.action.params})
    return attrs


def trace_graph(trace: Trace, provenance: Provenance) -> TraceGraph:
    import networkx as nx

    g: TraceGraph = nx.DiGraph()
    g.graph.update(
        schema=SCHEMA,
        rule=trace.rule_name,
        expression=provenance.expression,
        property=trace.prop.name,
        property_title=trace.prop.title,
        property_statement=trace.prop.statement,
        vcpus=trace.vcpus,
        **shape_values(trace.initial.shape),
        depth=trace.depth,
        era=provenance.era,
        **paths_table(trace.paths),
        checker_version=provenance.checker_version,
        z3_version=provenance.z3_version,
        command=provenance.command,
    )
    last = trace.depth
    state_property = trace.prop.kind is Kind.STATE
    names = ["initial state", *(action_label(step.action) for step in trace.steps)]
    for i, state in enumerate(trace.states):
        g.add_node(
            i,
            step=i,
            label=f"step {i}: {names[i]}",
            **state_attributes(state),
            violation=state_property and i == last,
        )
    for i, step in enumerate(trace.steps, start=1):
        g.add_edge(i - 1, i, **step_attributes(step), violation=not state_property and i == last)
    return g


def node_link_json(g: TraceGraph) -> str:
    import networkx as nx

    data = nx.node_link_data(g, edges="edges")
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def graphml_text(g: TraceGraph) -> str:
    import networkx as nx

    return "\n".join(nx.generate_graphml(g)) + "\n"


def counterexample_stem(trace: Trace) -> str:
    return f"{trace.prop.name}-{trace.vcpus}vcpus"


def write_counterexample(g: TraceGraph, directory: Path, stem: str) -> list[Path]:
    """Write ``stem.json`` and ``stem.graphml`` under ``directory``: both, or
    neither (a full disk must not leave a trace's JSON without its GraphML)."""
    from checker.files import write_together

    written = [directory / f"{stem}.json", directory / f"{stem}.graphml"]
    write_together(list(zip(written, (node_link_json(g), graphml_text(g)), strict=True)))
    return written


# --- reading ---------------------------------------------------------------------------


class CounterexampleError(InputError):
    """A file that is not a counterexample this checker can read."""


@dataclass(frozen=True)
class Loaded:
    """A counterexample file, parsed and validated, not yet replayed."""

    path: Path
    graph: TraceGraph
    rule_name: str
    expression: str
    prop: Property
    vcpus: int
    shape: Shape
    era: str
    paths: Paths
    actions: tuple[semantics.Action, ...]
    #: the states the file records, the initial one first
    states: tuple[semantics.State, ...]


def read_counterexample(path: Path) -> Loaded:
    """Parse a counterexample written by :func:`write_counterexample` (JSON or GraphML).

    The file must be a regular file of at most ``MAX_TRACE_BYTES``; its sizes
    (vCPUs, depth) must be within the model's limits and its texts free of control
    characters, all checked before they are used.
    """
    import networkx as nx

    from checker.files import read_text
    from checker.limits import MAX_TRACE_BYTES

    def bad(problem: str) -> CounterexampleError:
        return CounterexampleError(
            f"{path}: {problem}; regenerate it with the command in its metadata"
        )

    text = read_text(path, MAX_TRACE_BYTES, "a counterexample file")
    try:
        if path.suffix == ".graphml":
            if "<!DOCTYPE" in text or "<!ENTITY" in text:
                # never written by networkx; entities are how XML bombs explode
                raise bad("not a counterexample (GraphML with a DOCTYPE or ENTITY)")
            with warnings.catch_warnings():
                # networkx warns (on stderr) about a key without a type: the error
                # or the replay below reports what matters, in one line
                warnings.simplefilter("ignore")
                g = _from_graphml(nx.parse_graphml(text))
        else:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise bad("not a counterexample (expected a JSON object)")
            g = nx.DiGraph(nx.node_link_graph(data, edges="edges"))
    except CounterexampleError:
        raise
    except Exception as exc:  # any parse failure of either format, deep nesting too
        raise bad(f"not a counterexample file ({type(exc).__name__}: {exc})") from None

    meta = g.graph
    if meta.get("schema") in OLD_SCHEMAS:
        raise bad(f"format {meta['schema']} is from an earlier checker (this one reads {SCHEMA})")
    if meta.get("schema") != SCHEMA:
        raise bad(f"unknown format {quoted(meta.get('schema'))} (this checker reads {SCHEMA})")
    try:
        prop = PROPERTY_BY_NAME[meta["property"]]
        vcpus = checked_size(meta["vcpus"], "vcpus", 1, MAX_VCPUS)
        shape = shape_from_values(meta, MAX_GFNS)
        depth = checked_size(meta["depth"], "depth", 0, MAX_DEPTH)
        texts = {key: metadata_text(meta, key) for key in TEXT_METADATA if key in meta}
        rule_name, expression = texts["rule"], metadata_text(meta, "expression", multiline=True)
        paths = paths_from(
            {key: meta[key] for key in paths_table(Paths())},
            lambda key, problem: bad(f"metadata '{key}': {problem}"),
        )
        if sorted(g.nodes) != list(range(depth + 1)):
            raise bad(f"nodes are not the steps 0..{depth}")
        # the states are those of the era and MMU the file records
        model = model_for(paths, shape.huge)
        states = tuple(
            state_from_values(g.nodes[i], shape, vcpus, _bool, model) for i in range(depth + 1)
        )
        actions = tuple(_action(g, i, vcpus, shape, model) for i in range(1, depth + 1))
    except CounterexampleError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise bad(f"malformed ({type(exc).__name__}: {quoted(exc, 200)})") from None
    era = texts.get("era", "default")
    return Loaded(path, g, rule_name, expression, prop, vcpus, shape, era, paths, actions, states)


#: metadata shown as text: no control characters (terminal escapes, line breaks).
#: The checker's own traces keep to it: a ``command`` whose arguments hold such
#: characters (a multi-line ``--expr``) is written with bash's ANSI-C quoting,
#: ``$'...\n...'`` (see :func:`checker.cli.common.shell_quote`)
TEXT_METADATA = ("rule", "era", "command", "checker_version", "z3_version")


def checked_size(value: Any, key: str, least: int, most: int) -> int:
    """``value`` if it is an integer in ``least..most``, else a ``ValueError``:
    a size from a file is checked before anything is built from it."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"'{key}' is not an integer: {quoted(value)}")
    if not least <= value <= most:
        raise ValueError(f"'{key}' is {value}, outside {least}..{most}")
    return value


def metadata_text(meta: Any, key: str, multiline: bool = False) -> str:
    """The string ``meta[key]``; a ``ValueError`` if it is not a string or holds a
    control character (a line break or tab too, unless ``multiline``)."""
    from checker.text import control_character

    value = meta[key]
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is not a string: {quoted(value)}")
    found = control_character(value, allow="\n\t" if multiline else "")
    if found is not None:
        raise ValueError(f"'{key}' holds the control character {found!r}")
    return value


def _action(g: TraceGraph, i: int, vcpus: int, shape: Shape, model: Model) -> semantics.Action:
    if not g.has_edge(i - 1, i):
        raise ValueError(f"no edge from step {i - 1} to step {i}")
    attrs = g.edges[i - 1, i]
    # the operation as the file's era performs it (a KeyError if it has none such):
    # its parameters may differ by era
    op = model.by_name(attrs["operation"])
    vcpu = _number(attrs["vcpu"], "vcpu") if op.by_vcpu else None
    if vcpu is not None and not 0 <= vcpu < vcpus:
        raise ValueError(f"step {i}: vcpu {vcpu} out of range")
    params = tuple((p, _bool(attrs[f"param_{p}"])) for p in op.params)
    gfn = None
    if op.reach is Reach.GFN and shape.gfns > 1:
        gfn = _number(attrs["gfn"], "gfn")
        if not 0 <= gfn < shape.gfns:
            raise ValueError(f"step {i}: gfn {gfn} out of range")
    return semantics.Action(op.name, vcpu, params, gfn)


def _number(value: Any, key: str) -> int:
    """An edge's small integer (a vCPU, a gfn); a ``ValueError`` for anything else
    (``Infinity``, a float, a string of 10**6 digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or len(str(value)) > 6:
        raise ValueError(f"'{key}' is not a small integer: {quoted(value)}")
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("True", "true", "1", 1):
        return True
    if value in ("False", "false", "0", 0):
        return False
    raise ValueError(f"not a Boolean: {value!r}")


def _from_graphml(g: nx.Graph[str]) -> TraceGraph:
    """GraphML names nodes by strings; give them back their step numbers."""
    import networkx as nx

    renamed: TraceGraph = nx.DiGraph(nx.relabel_nodes(g, {n: int(n) for n in g.nodes}))
    for key in ("node_default", "edge_default"):
        renamed.graph.pop(key, None)
    return renamed
