"""A state as flat, named values: what every trace file records, and back.

The names are the vocabulary's (``checker.model.vocabulary``): a shared leaf by
its name (``writable``, ``dirty_logging``; with several SPTEs or gfns
``writable[1]``), each vCPU's TLB entry as ``tlb_vcpu<v>`` (with several gfns
``tlb_vcpu<v>[<g>]``) holding ``none``/``ro``/``rw``/``rwd``, each vCPU's locals as
``vcpu<v>.<local>``, and each SPTE's value as ``spte`` (``spte[<i>]``), hex in the
x86 layout. A file records its shape (``gfns``, ``spte_of``) beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from checker.engines.semantics import State
from checker.engines.trace import spte_hex
from checker.model import MODEL, Actor, Model, Shape, Tlb
from checker.model.logic import CONCRETE
from checker.model.vocabulary import leaves, rebuild

_TLB_LABELS = {t.label: t for t in Tlb}


def tlb_key(vcpu: int, gfn: int, shape: Shape) -> str:
    return f"tlb_vcpu{vcpu}" if shape.gfns == 1 else f"tlb_vcpu{vcpu}[{gfn}]"


def local_key(vcpu: int, name: str) -> str:
    return f"vcpu{vcpu}.{name}"


def spte_key(spte: int, shape: Shape) -> str:
    return "spte" if shape.sptes == 1 else f"spte[{spte}]"


def state_values(state: State) -> dict[str, Any]:
    """Every value of ``state`` by name, the SPTEs' hex values included."""
    shape = state.shape
    model = state.model
    values: dict[str, Any] = dict(zip(model.shared_names(shape), leaves(state.shared), strict=True))
    for v, record in enumerate(state.vcpus):
        for g, entry in enumerate(record.tlbs):
            values[tlb_key(v, g, shape)] = Tlb.of(entry).label
        for local, value in zip(model.locals, record.local, strict=True):
            values[local_key(v, local.name)] = value
    for i in range(shape.sptes):
        values[spte_key(i, shape)] = spte_hex(state, spte=i)
    return values


def state_from_values(
    values: Mapping[str, Any],
    shape: Shape,
    vcpus: int,
    boolean: Callable[[Any], bool],
    model: Model = MODEL,
) -> State:
    """The state :func:`state_values` gave ``values`` (Booleans read by ``boolean``),
    a state of ``model`` (the era's: its locals are the file's); a ``KeyError`` or
    ``ValueError`` for a missing or malformed value."""
    template = model.initial_shared(CONCRETE, shape)
    shared = rebuild(template, iter([boolean(values[n]) for n in model.shared_names(shape)]))
    records = []
    for v in range(vcpus):
        tlbs = []
        for g in range(shape.gfns):
            label = values[tlb_key(v, g, shape)]
            if label not in _TLB_LABELS:
                raise ValueError(f"{tlb_key(v, g, shape)} is {label!r}, not none, ro, rw or rwd")
            tlbs.append(_TLB_LABELS[label].entry())
        local = tuple(boolean(values[local_key(v, x.name)]) for x in model.locals)
        records.append(Actor(tuple(tlbs), local))
    return State(shared, tuple(records), shape, model)


def shape_values(shape: Shape) -> dict[str, Any]:
    """The shape as a file records it: ``gfns`` and ``spte_of`` (``"0,1"``), and
    ``huge`` if a 2M SPTE maps them (absent otherwise, so files of shapes without
    one are as before)."""
    assert shape.spte_of is not None
    values: dict[str, Any] = {"gfns": shape.gfns, "spte_of": ",".join(map(str, shape.spte_of))}
    if shape.huge:
        values["huge"] = True
    return values


def shape_from_values(values: Mapping[str, Any], most_gfns: int) -> Shape:
    """The shape a file records; a ``ValueError`` naming what is wrong."""
    gfns = values["gfns"]
    if not isinstance(gfns, int) or isinstance(gfns, bool) or not 1 <= gfns <= most_gfns:
        raise ValueError(f"'gfns' is {gfns!r}, not an integer in 1..{most_gfns}")
    text = values["spte_of"]
    if not isinstance(text, str) or len(text) > 8 * most_gfns:
        raise ValueError("'spte_of' is not a list of SPTE numbers like '0,1'")
    parts = text.split(",")
    if len(parts) != gfns or not all(x.isdigit() and int(x) < gfns for x in parts):
        # checked before a Shape is built: a number of 10**12 must not become a list
        raise ValueError(f"'spte_of' is {text!r}, not {gfns} SPTE numbers below {gfns}")
    huge = values.get("huge", False)
    if not isinstance(huge, bool):
        raise ValueError(f"'huge' is {huge!r}, not true or false")
    try:
        return Shape(gfns=gfns, spte_of=tuple(int(x) for x in parts), huge=huge)
    except ValueError as exc:
        raise ValueError(f"'spte_of' is {text!r}: {exc}") from None
