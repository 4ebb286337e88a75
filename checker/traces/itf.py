"""Counterexamples in the Informal Trace Format (Apalache ADR-015), and back.

Shape of the document (keys sorted when written)::

    {"#meta": {"format": "ITF", "format-description": ..., "source": ...,
               "description": ..., "checker": {rule, expression, property, ...}},
     "params": [],
     "vars": ["ad_enabled", ..., "tlb", "mbt::actionTaken", "mbt::nondetPicks"],
     "states": [{"#meta": {"index": i, "operation": ..., "actor": ..., "vcpu": ...},
                 "spte": {"present": true, ...}, "tlb": {"#map": [[{"#bigint": "0"}, "rw"]]},
                 ..., "mbt::actionTaken": "page_fault",
                 "mbt::nondetPicks": {"vcpu": {"tag": "Some", "value": {"#bigint": "0"}},
                                      "host_writable": {"tag": "Some", "value": true},
                                      "guest_writable": {"tag": "None", "value": {"#tup": []}}}}]}

State ``i`` is the state after step ``i``; ``mbt::actionTaken`` is the operation
that led to it (``init`` for state 0) and ``mbt::nondetPicks`` its choices, as
Quint's model-based-testing traces have them (each pick an ``Option`` variant). The
operation and acting vCPU are repeated in each state's ``#meta``. Integers are
``#bigint``; the TLB is a map from vCPU to ``none``/``ro``/``rw``. ``#meta.checker``
records the rule, property, paths and provenance, so :func:`read_itf` can replay
the trace like any other counterexample file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checker.engines.semantics import Action, State
from checker.limits import MAX_DEPTH, MAX_VCPUS
from checker.model import (
    GFN_FIELDS,
    OPERATION_BY_NAME,
    PARAMS,
    PROPERTY_BY_NAME,
    SPTE_FIELDS,
    Gfn,
    Kind,
    Paths,
    Spte,
    Tlb,
)
from checker.rules.specs import paths_from, paths_table
from checker.traces.counterexample import Counterexample
from checker.traces.graph import CounterexampleError, Provenance
from checker.traces.view import hex_value

SUFFIX = ".itf.json"
FORMAT_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"
SCHEMA = "checker.itf/1"
ACTION_TAKEN = "mbt::actionTaken"
NONDET_PICKS = "mbt::nondetPicks"
INIT = "init"

#: the state variables, in the order of ``vars``
STATE_VARS: tuple[str, ...] = ("spte", "spte_x86", "spte_ept", "tlb", *GFN_FIELDS)
VARS: tuple[str, ...] = (*STATE_VARS, ACTION_TAKEN, NONDET_PICKS)
#: every choice an action makes: the acting vCPU and the operation's parameters
PICKS: tuple[str, ...] = ("vcpu", *PARAMS)


def is_itf_path(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


# --- writing ----------------------------------------------------------------------------


def bigint(n: int) -> dict[str, str]:
    return {"#bigint": str(n)}


def some(value: Any) -> dict[str, Any]:
    return {"tag": "Some", "value": value}


NONE: dict[str, Any] = {"tag": "None", "value": {"#tup": []}}


def state_values(state: State) -> dict[str, Any]:
    """The ITF values of a state's variables (without the action)."""
    values: dict[str, Any] = {
        "spte": {f: bool(getattr(state.gfn.spte, f)) for f in SPTE_FIELDS},
        "spte_x86": hex_value(state.gfn.spte, "x86"),
        "spte_ept": hex_value(state.gfn.spte, "ept"),
        "tlb": {"#map": [[bigint(v), t.label] for v, t in enumerate(state.tlbs)]},
    }
    values.update({f: bool(getattr(state.gfn, f)) for f in GFN_FIELDS})
    return values


def picks(action: Action | None) -> dict[str, Any]:
    """``mbt::nondetPicks``: ``Some(choice)`` for each choice the action made."""
    chosen: dict[str, Any] = {name: NONE for name in PICKS}
    if action is not None:
        if action.vcpu is not None:
            chosen["vcpu"] = some(bigint(action.vcpu))
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
            meta["kernel_function"] = action.operation.function
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
        "depth": trace.depth,
        "profile": provenance.profile,
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
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else None
        shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
        raise bad(f"not an ITF export of this checker (#meta.checker.schema is {shown})")
    try:
        prop = PROPERTY_BY_NAME[meta["property"]]
        vcpus = checked_size(meta["vcpus"], "vcpus", 1, MAX_VCPUS)
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
        states = tuple(_state(s, vcpus) for s in raw)
        actions = tuple(_action(s, vcpus) for s in raw[1:])
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
        profile=texts.get("profile", "default"),
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
        return int(value["#bigint"])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"not an integer: {value!r}")


def _state(values: dict[str, Any], vcpus: int) -> State:
    spte = Spte(**{f: _bool(values["spte"][f]) for f in SPTE_FIELDS})
    gfn = Gfn(spte=spte, **{f: _bool(values[f]) for f in GFN_FIELDS})
    tlb = {_int(k): _TLB[v] for k, v in values["tlb"]["#map"]}
    if sorted(tlb) != list(range(vcpus)):
        raise ValueError(f"tlb has vCPUs {sorted(tlb)}, expected 0..{vcpus - 1}")
    return State(gfn, tuple(tlb[v] for v in range(vcpus)))


def _action(values: dict[str, Any], vcpus: int) -> Action:
    op = OPERATION_BY_NAME[values[ACTION_TAKEN]]
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
    params = []
    for name in op.params:
        value = pick(name)
        if value is None:
            raise ValueError(f"{op.name}: parameter {name!r} not picked")
        params.append((name, _bool(value)))
    return Action(op.name, vcpu, tuple(params))
