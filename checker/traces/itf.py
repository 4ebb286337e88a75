"""Counterexamples in the Informal Trace Format (Apalache ADR-015), and back.

Shape of the document (keys sorted when written)::

    {"#meta": {"format": "ITF", "format-description": ..., "source": ...,
               "description": ..., "checker": {rule, expression, property, ...}},
     "params": [],
     "vars": ["sptes", "spte_x86", "spte_ept", "frames", "tlb", "locals", "host_locals",
              "ad_enabled", ..., "mbt::actionTaken", "mbt::nondetPicks"],
     "states": [{"#meta": {"index": i, "operation": ..., "actor": ..., "vcpu": ...},
                 "sptes": {"#map": [[{"#bigint": "0"}, {"present": true, ...}]]},
                 "frames": {"#map": [[{"#bigint": "0"}, {"write_tracked": false, ...}]]},
                 "tlb": {"#map": [[{"#bigint": "0"}, {"#map": [[{"#bigint": "0"}, "rw"]]}]]},
                 "locals": {"#map": [[{"#bigint": "0"}, {}]]}, ...,
                 "mbt::actionTaken": "page_fault",
                 "mbt::nondetPicks": {"vcpu": {"tag": "Some", "value": {"#bigint": "0"}},
                                      "gfn": {"tag": "None", "value": {"#tup": []}},
                                      "host_writable": {"tag": "Some", "value": true},
                                      "guest_writable": {"tag": "None", "value": {"#tup": []}}}}]}

State ``i`` is the state after step ``i``; ``mbt::actionTaken`` is the operation
that led to it (``init`` for state 0) and ``mbt::nondetPicks`` its choices, as
Quint's model-based-testing traces have them (each pick an ``Option`` variant). The
operation and acting vCPU are repeated in each state's ``#meta``. Integers are
``#bigint``. SPTEs and gfns are maps from their number to a record; the TLB is a
map from vCPU to a map from gfn to ``none``/``ro``/``rw``; ``locals`` maps each
vCPU to its locals (``host_locals`` each host thread), empty records when the
model has none; the memslot's fields are variables of their own. ``#meta.checker``
records the rule, property, shape, paths and provenance, so :func:`read_itf` can
replay the trace like any other counterexample file. Format ``checker.itf/4`` (4:
the eras' huge-page choices among the paths); an export of an earlier version is
refused with a line naming its version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checker.engines.semantics import Action, State
from checker.limits import MAX_DEPTH, MAX_GFNS, MAX_VCPUS
from checker.model import (
    FRAME_FIELDS,
    MODEL,
    PARAMS,
    PROPERTY_BY_NAME,
    SLOT_FIELDS,
    SPTE_FIELDS,
    Actor,
    Frame,
    Kind,
    Model,
    Paths,
    Reach,
    Shape,
    Shared,
    Slot,
    Spte,
    Tlb,
)
from checker.model.declaration import model_for
from checker.rules.specs import paths_from, paths_table
from checker.traces.counterexample import Counterexample
from checker.traces.graph import CounterexampleError, Provenance
from checker.traces.view import hex_value

SUFFIX = ".itf.json"
FORMAT_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"
SCHEMA = "checker.itf/4"
#: earlier formats, refused by name
OLD_SCHEMAS = ("checker.itf/1", "checker.itf/2", "checker.itf/3")
ACTION_TAKEN = "mbt::actionTaken"
NONDET_PICKS = "mbt::nondetPicks"
INIT = "init"

#: the state variables, in the order of ``vars``
STATE_VARS: tuple[str, ...] = (
    "sptes",
    "spte_x86",
    "spte_ept",
    "frames",
    "tlb",
    "locals",
    "host_locals",
    *SLOT_FIELDS,
)
VARS: tuple[str, ...] = (*STATE_VARS, ACTION_TAKEN, NONDET_PICKS)
#: every choice an action makes: the acting vCPU, the gfn and the operation's parameters
PICKS: tuple[str, ...] = ("vcpu", "gfn", *PARAMS)


def is_itf_path(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


# --- writing ----------------------------------------------------------------------------


def bigint(n: int) -> dict[str, str]:
    return {"#bigint": str(n)}


def some(value: Any) -> dict[str, Any]:
    return {"tag": "Some", "value": value}


NONE: dict[str, Any] = {"tag": "None", "value": {"#tup": []}}


def _map(items: Any) -> dict[str, Any]:
    return {"#map": [[bigint(i), value] for i, value in enumerate(items)]}


def _locals(record: Actor[bool], state: State) -> dict[str, bool]:
    return {x.name: bool(v) for x, v in zip(state.model.locals, record.local, strict=True)}


def state_values(state: State) -> dict[str, Any]:
    """The ITF values of a state's variables (without the action)."""
    shared = state.shared
    values: dict[str, Any] = {
        "sptes": _map({f: bool(getattr(s, f)) for f in SPTE_FIELDS} for s in shared.sptes),
        "spte_x86": _map(hex_value(s, "x86") for s in shared.sptes),
        "spte_ept": _map(hex_value(s, "ept") for s in shared.sptes),
        "frames": _map({f: bool(getattr(x, f)) for f in FRAME_FIELDS} for x in shared.frames),
        "tlb": _map(_map(Tlb.of(e).label for e in v.tlbs) for v in state.vcpus),
        "locals": _map(_locals(v, state) for v in state.vcpus),
        "host_locals": _map(_locals(h, state) for h in shared.hosts),
    }
    values.update({f: bool(getattr(shared.slot, f)) for f in SLOT_FIELDS})
    return values


def picks(action: Action | None) -> dict[str, Any]:
    """``mbt::nondetPicks``: ``Some(choice)`` for each choice the action made."""
    chosen: dict[str, Any] = {name: NONE for name in PICKS}
    if action is not None:
        if action.vcpu is not None:
            chosen["vcpu"] = some(bigint(action.vcpu))
        if action.gfn is not None:
            chosen["gfn"] = some(bigint(action.gfn))
        for name, value in action.params:
            chosen[name] = some(value)
    return chosen


def itf_document(cx: Counterexample) -> dict[str, Any]:
    """The counterexample as an ITF trace (a JSON-ready dict)."""
    trace, provenance = cx.trace, cx.provenance
    prop = trace.prop
    fails = "last state" if prop.kind is Kind.STATE else "last step"
    last = trace.depth
    states: list[dict[str, Any]] = []
    for i, state in enumerate(trace.states):
        step = trace.steps[i - 1] if i else None
        meta: dict[str, Any] = {"index": i}
        if step is None:
            meta["operation"] = INIT
        else:
            action = step.action
            meta["operation"] = action.op
            meta["actor"] = f"vcpu{action.vcpu}" if action.vcpu is not None else "host"
            if action.vcpu is not None:
                meta["vcpu"] = action.vcpu
            meta["kernel_function"] = step.operation.function
            meta["tlb_flush"] = bool(step.outcome.flush)
        meta["violation"] = i == last
        states.append(
            {
                "#meta": meta,
                **state_values(state),
                ACTION_TAKEN: step.action.op if step else INIT,
                NONDET_PICKS: picks(step.action if step else None),
            }
        )
    checker_meta: dict[str, Any] = {
        "schema": SCHEMA,
        "rule": trace.rule_name,
        "expression": provenance.expression,
        "property": prop.name,
        "property_title": prop.title,
        "property_statement": prop.statement,
        "violation": "state" if prop.kind is Kind.STATE else "step",
        "vcpus": trace.vcpus,
        "gfns": trace.initial.shape.gfns,
        "spte_of": list(trace.initial.shape.spte_of or ()),
        **({"huge": True} if trace.initial.shape.huge else {}),
        "depth": trace.depth,
        "era": provenance.era,
        "paths": paths_table(trace.paths),
        "command": provenance.command,
        "checker_version": provenance.checker_version,
        "z3_version": provenance.z3_version,
    }
    return {
        "#meta": {
            "format": "ITF",
            "format-description": FORMAT_DESCRIPTION,
            "source": cx.source or provenance.command,
            "description": (
                f"counterexample to {prop.name} ({prop.title}) for rule {trace.rule_name}, "
                f"{trace.vcpus} vCPU{'s' if trace.vcpus != 1 else ''}, {trace.depth} steps; "
                f"the property fails at the {fails}"
            ),
            "checker": checker_meta,
        },
        "params": [],
        "vars": list(VARS),
        "states": states,
    }


def itf_text(cx: Counterexample) -> str:
    """The ITF document as text: sorted keys, so the same trace gives the same bytes."""
    return json.dumps(itf_document(cx), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --- reading ----------------------------------------------------------------------------


def read_itf(path: Path) -> Counterexample:
    """Read an ITF file written by :func:`itf_text` and replay it (a regular file of
    at most ``MAX_TRACE_BYTES``, its sizes and texts checked before use)."""
    from checker.files import read_text
    from checker.limits import MAX_TRACE_BYTES

    text = read_text(path, MAX_TRACE_BYTES, "an ITF trace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CounterexampleError(
            f"{path}: not an ITF file (not JSON: {type(exc).__name__}: {exc}); "
            "export it again with 'checker export'"
        ) from None
    return parse_itf(data, path)


def parse_itf(data: Any, path: Path) -> Counterexample:
    """The counterexample in an ITF document ``data`` read from ``path``, replayed."""
    from checker.traces.graph import TEXT_METADATA, checked_size, metadata_text
    from checker.traces.replay import replay_file

    def bad(problem: str) -> CounterexampleError:
        return CounterexampleError(f"{path}: {problem}; export it again with 'checker export'")

    if not isinstance(data, dict) or not isinstance(data.get("states"), list):
        raise bad("not an ITF trace (expected an object with 'states')")
    meta = data.get("#meta", {}).get("checker") if isinstance(data.get("#meta"), dict) else None
    if isinstance(meta, dict) and meta.get("schema") in OLD_SCHEMAS:
        raise bad(f"format {meta['schema']} is from an earlier checker (this one reads {SCHEMA})")
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else None
        shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
        raise bad(f"not an ITF export of this checker (#meta.checker.schema is {shown})")
    try:
        prop = PROPERTY_BY_NAME[meta["property"]]
        vcpus = checked_size(meta["vcpus"], "vcpus", 1, MAX_VCPUS)
        gfns = checked_size(meta["gfns"], "gfns", 1, MAX_GFNS)
        spte_of = meta["spte_of"]
        if not isinstance(spte_of, list) or len(spte_of) != gfns:
            raise ValueError(f"'spte_of' is not a list of {gfns} SPTE numbers")
        huge = meta.get("huge", False)
        if not isinstance(huge, bool):
            raise ValueError(f"'huge' is {huge!r}, not true or false")
        shape = Shape(
            gfns, tuple(checked_size(i, "spte_of", 0, gfns - 1) for i in spte_of), huge=huge
        )
        raw = data["states"]
        if not raw:
            raise ValueError("no states")
        if len(raw) > MAX_DEPTH + 1:
            raise ValueError(f"{len(raw)} states, more than {MAX_DEPTH + 1}")
        if "depth" in meta and checked_size(meta["depth"], "depth", 0, MAX_DEPTH) != len(raw) - 1:
            raise ValueError(f"'depth' is {meta['depth']} but there are {len(raw)} states")
        texts = {key: metadata_text(meta, key) for key in TEXT_METADATA if key in meta}
        rule_name, expression = texts["rule"], metadata_text(meta, "expression", multiline=True)
        if not isinstance(meta["paths"], dict):
            raise ValueError("'paths' is not an object")
        paths: Paths = paths_from(
            dict(meta["paths"]), lambda key, problem: bad(f"#meta paths '{key}': {problem}")
        )
        # the states are those of the era and MMU the file records
        model = model_for(paths, shape.huge)
        states = tuple(_state(s, vcpus, shape, model) for s in raw)
        actions = tuple(_action(s, vcpus, shape, model) for s in raw[1:])
        if raw[0][ACTION_TAKEN] != INIT:
            raise ValueError(f"state 0: {ACTION_TAKEN} is not {INIT!r}")
    except CounterexampleError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        message = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."
        raise bad(f"malformed ({type(exc).__name__}: {message})") from None
    provenance = Provenance(
        expression=expression,
        command=texts.get("command", ""),
        checker_version=texts.get("checker_version", "unknown"),
        z3_version=texts.get("z3_version", "unknown"),
        era=texts.get("era", "default"),
    )
    trace = replay_file(path, rule_name, expression, prop, paths, actions, states)
    return Counterexample(trace, provenance, str(path))


_TLB = {t.label: t for t in Tlb}


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"not a Boolean: {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, dict) and set(value) == {"#bigint"}:
        digits = value["#bigint"]
        if not isinstance(digits, str) or not digits.lstrip("-").isdigit() or len(digits) > 12:
            raise ValueError(f"not a small #bigint: {digits!r}")
        return int(digits)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"not an integer: {value!r}")


def _indexed(value: Any, name: str, count: int) -> list[Any]:
    """The values of an ITF map from 0..count-1, in order."""
    found = {_int(k): v for k, v in value["#map"]}
    if sorted(found) != list(range(count)):
        raise ValueError(f"{name} has keys {sorted(found)}, expected 0..{count - 1}")
    return [found[i] for i in range(count)]


def _record_locals(value: Any, model: Model) -> tuple[bool, ...]:
    if set(value) != {x.name for x in model.locals}:
        raise ValueError(f"locals {sorted(value)}, expected {[x.name for x in model.locals]}")
    return tuple(_bool(value[x.name]) for x in model.locals)


def _state(values: dict[str, Any], vcpus: int, shape: Shape, model: Model = MODEL) -> State:
    sptes = tuple(
        Spte(**{f: _bool(s[f]) for f in SPTE_FIELDS})
        for s in _indexed(values["sptes"], "sptes", shape.sptes)
    )
    frames = tuple(
        Frame(**{f: _bool(x[f]) for f in FRAME_FIELDS})
        for x in _indexed(values["frames"], "frames", shape.gfns)
    )
    hosts = tuple(
        Actor((), _record_locals(x, model))
        for x in _indexed(values["host_locals"], "host_locals", shape.host_threads)
    )
    slot = Slot(**{f: _bool(values[f]) for f in SLOT_FIELDS})
    tlbs = _indexed(values["tlb"], "tlb", vcpus)
    local = _indexed(values["locals"], "locals", vcpus)
    records = tuple(
        Actor(
            tuple(_TLB[label].entry() for label in _indexed(tlbs[v], "tlb", shape.gfns)),
            _record_locals(local[v], model),
        )
        for v in range(vcpus)
    )
    return State(Shared(sptes, slot, frames, hosts), records, shape, model)


def _action(values: dict[str, Any], vcpus: int, shape: Shape, model: Model) -> Action:
    # the operation as the file's era performs it (a KeyError if it has none such):
    # its parameters may differ by era
    op = model.by_name(values[ACTION_TAKEN])
    chosen = values[NONDET_PICKS]

    def pick(name: str) -> Any:
        option = chosen[name]
        if option["tag"] == "None":
            return None
        if option["tag"] != "Some":
            raise ValueError(f"pick {name!r}: not an Option variant")
        return option["value"]

    vcpu_value = pick("vcpu")
    vcpu = None if vcpu_value is None else _int(vcpu_value)
    if op.by_vcpu != (vcpu is not None):
        raise ValueError(f"{op.name}: vcpu pick {vcpu!r} does not fit the operation")
    if vcpu is not None and not 0 <= vcpu < vcpus:
        raise ValueError(f"{op.name}: vcpu {vcpu} out of range")
    gfn_value = pick("gfn")
    gfn = None if gfn_value is None else _int(gfn_value)
    if (op.reach is Reach.GFN and shape.gfns > 1) != (gfn is not None):
        raise ValueError(f"{op.name}: gfn pick {gfn!r} does not fit the operation")
    if gfn is not None and not 0 <= gfn < shape.gfns:
        raise ValueError(f"{op.name}: gfn {gfn} out of range")
    params = []
    for name in op.params:
        value = pick(name)
        if value is None:
            raise ValueError(f"{op.name}: parameter {name!r} not picked")
        params.append((name, _bool(value)))
    return Action(op.name, vcpu, tuple(params), gfn)
