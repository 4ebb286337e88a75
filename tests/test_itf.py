"""ITF export: the shape ADR-015 and Quint's MBT traces define, and the round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from checker.errors import InputError
from checker.traces import itf, load
from checker.traces.counterexample import Counterexample

from .conftest import COUNTEREXAMPLES
from .traces import classic

COMMITTED = sorted(COUNTEREXAMPLES.rglob("*.json"))
TRACE_KEYS = {"#meta", "params", "vars", "states", "loop"}


def check_value(value: Any, where: str) -> None:
    """``value`` is an ITF expression (ADR-015, plus the variants of Quint traces)."""
    assert not isinstance(value, float), f"{where}: a float is not an ITF value"
    if isinstance(value, bool | str):
        return
    if isinstance(value, int):
        assert -(2**53) + 1 <= value <= 2**53 - 1, f"{where}: integer out of JSON range"
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_value(item, f"{where}[{i}]")
        return
    assert isinstance(value, dict), f"{where}: {type(value).__name__} is not an ITF value"
    keys = set(value)
    if keys == {"#bigint"}:
        assert re.fullmatch(r"-?[0-9]+", value["#bigint"]), f"{where}: bad #bigint"
    elif keys in ({"#tup"}, {"#set"}):
        (items,) = value.values()
        assert isinstance(items, list), f"{where}: {keys} holds a list"
        check_value(items, where)
    elif keys == {"#map"}:
        assert isinstance(value["#map"], list)
        for i, pair in enumerate(value["#map"]):
            assert isinstance(pair, list) and len(pair) == 2, f"{where}: map entry {i}"
            check_value(pair, f"{where}.#map[{i}]")
    elif keys == {"tag", "value"}:
        assert isinstance(value["tag"], str), f"{where}: variant tag"
        check_value(value["value"], f"{where}.value")
    else:
        for key, item in value.items():
            assert not key.startswith("#"), f"{where}: record field {key!r} starts with #"
            check_value(item, f"{where}.{key}")


def check_trace(document: Any) -> None:
    """``document`` is an ITF trace with Quint's ``mbt::`` variables in every state."""
    assert isinstance(document, dict) and set(document) <= TRACE_KEYS
    assert isinstance(document.get("#meta", {}), dict)
    assert all(isinstance(p, str) for p in document.get("params", []))
    variables = document["vars"]
    assert isinstance(variables, list) and all(isinstance(v, str) for v in variables)
    assert len(set(variables)) == len(variables)
    assert {itf.ACTION_TAKEN, itf.NONDET_PICKS} <= set(variables)
    states = document["states"]
    assert isinstance(states, list) and states
    for i, state in enumerate(states):
        assert set(state) == {"#meta", *variables}, f"state {i}: variables"
        assert isinstance(state["#meta"], dict) and state["#meta"]["index"] == i
        for name in variables:
            check_value(state[name], f"states[{i}].{name}")
        assert isinstance(state[itf.ACTION_TAKEN], str)
        picks = state[itf.NONDET_PICKS]
        assert isinstance(picks, dict)
        for name, pick in picks.items():
            assert pick["tag"] in ("Some", "None"), f"state {i}: pick {name} is not an Option"
    if "loop" in document:
        assert isinstance(document["loop"], int) and 0 <= document["loop"] < len(states)


def document(cx: Counterexample) -> Any:
    return json.loads(itf.itf_text(cx))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name + "/" + p.name)
def test_exports_have_the_itf_shape(path: Path) -> None:
    check_trace(document(load.load(path)))


def test_states_carry_the_operation_and_vcpu_in_meta_and_mbt() -> None:
    states = document(classic())["states"]
    assert states[0]["#meta"] == {"index": 0, "operation": "init", "violation": False}
    assert states[0][itf.ACTION_TAKEN] == "init"
    fault = states[3]
    assert fault["#meta"]["operation"] == "page_fault" and fault["#meta"]["vcpu"] == 0
    assert fault["#meta"]["actor"] == "vcpu0"
    assert fault["#meta"]["kernel_function"] == "mmu_set_spte"
    assert fault[itf.ACTION_TAKEN] == "page_fault"
    assert fault[itf.NONDET_PICKS] == {
        "vcpu": {"tag": "Some", "value": {"#bigint": "0"}},
        "gfn": {"tag": "None", "value": {"#tup": []}},
        "host_writable": {"tag": "Some", "value": True},
        "write_fault": {"tag": "Some", "value": True},
        "guest_writable": {"tag": "None", "value": {"#tup": []}},
        "initially_set": {"tag": "None", "value": {"#tup": []}},
        "host_huge": {"tag": "None", "value": {"#tup": []}},
        "split": {"tag": "None", "value": {"#tup": []}},
    }
    harvest = states[5]
    assert harvest["#meta"]["actor"] == "host" and "vcpu" not in harvest["#meta"]
    assert harvest[itf.NONDET_PICKS]["vcpu"] == {"tag": "None", "value": {"#tup": []}}
    write = states[7]
    assert write["#meta"]["violation"] and write["#meta"]["vcpu"] == 1
    gfn0 = {"#bigint": "0"}
    assert write["tlb"] == {
        "#map": [
            [{"#bigint": "0"}, {"#map": [[gfn0, "none"]]}],
            [{"#bigint": "1"}, {"#map": [[gfn0, "rw"]]}],
        ]
    }
    assert write["sptes"]["#map"][0][1]["present"] is True
    assert write["locals"] == {"#map": [[{"#bigint": "0"}, {}], [{"#bigint": "1"}, {}]]}
    spte, frame = write["sptes"]["#map"][0][1], write["frames"]["#map"][0][1]
    assert spte["mmu_writable"] is False and frame["write_tracked"] is True
    assert write["spte_x86"] == {"#map": [[{"#bigint": "0"}, "0x0a00"]]}
    assert write["spte_ept"] == {"#map": [[{"#bigint": "0"}, "0x0200000000000800"]]}


def test_the_trace_meta_records_what_replay_needs() -> None:
    meta = document(classic())["#meta"]
    assert meta["format"] == "ITF" and "adr/015" in meta["format-description"]
    checker = meta["checker"]
    assert checker["rule"] == "legacy" and checker["property"] == "write_tracking"
    assert checker["paths"]["harvest_flush"] == "reaped"
    assert checker["era"] == "v6.4-v6.12/shadow" and checker["paths"]["mmu"] == "shadow"
    assert checker["command"] == (
        "checker check --rule legacy --vcpus 2 --era v6.4-v6.12 --mmu shadow"
    )


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name + "/" + p.name)
def test_round_trip_recovers_and_replays_the_trace(path: Path, tmp_path: Path) -> None:
    cx = load.load(path)
    exported = tmp_path / "trace.itf.json"
    exported.write_text(itf.itf_text(cx))
    again = load.load(exported)  # read_itf, then replayed
    assert again.trace == cx.trace
    assert again.provenance == cx.provenance
    assert itf.itf_text(again).replace(str(exported), str(path)) == itf.itf_text(cx)


def test_round_trip_of_an_interleaving(tmp_path: Path) -> None:
    cx = classic()
    exported = tmp_path / "classic.itf.json"
    exported.write_text(itf.itf_text(cx))
    assert itf.read_itf(exported).trace == cx.trace


def test_same_trace_same_bytes() -> None:
    assert itf.itf_text(classic()) == itf.itf_text(classic())


def broken(edit: Any) -> Any:
    data = document(classic())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("states"), "not an ITF trace"),
        (lambda d: d["#meta"].pop("checker"), "not an ITF export of this checker"),
        (lambda d: d["states"][3].pop("sptes"), "malformed"),
        (lambda d: d["states"][3].update({itf.ACTION_TAKEN: "teleport"}), "malformed"),
        (
            lambda d: d["states"][4][itf.NONDET_PICKS].update(
                {"vcpu": {"tag": "Some", "value": {"#bigint": "7"}}}
            ),
            "vcpu 7 out of range",
        ),
        (lambda d: d["states"][2]["tlb"].update({"#map": []}), "malformed"),
        (
            lambda d: d["states"][6]["sptes"]["#map"][0][1].update({"present": False}),
            "failed to replay",
        ),
        (
            lambda d: d["#meta"]["checker"].update({"schema": "checker.itf/1"}),
            "format checker.itf/1 is from an earlier checker (this one reads checker.itf/4)",
        ),
        # sizes a crafted file could make the reader allocate (10**9 vCPUs took 24 GB)
        (
            lambda d: d["#meta"]["checker"].update({"vcpus": 10**9}),
            "'vcpus' is 1000000000, outside 1..256",
        ),
        (
            lambda d: d["#meta"]["checker"].update({"depth": 10**12}),
            "'depth' is 1000000000000, outside 0..1000",
        ),
        (lambda d: d["#meta"]["checker"].update({"depth": 3}), "'depth' is 3 but there are"),
        (lambda d: d.update({"states": d["states"] * 200}), "states, more than 1001"),
        (
            lambda d: d["#meta"]["checker"].update({"era": "v6\x1b]8;;http://x\x07"}),
            "'era' holds the control character '\\x1b'",
        ),
        (lambda d: d["#meta"]["checker"].update({"paths": []}), "'paths' is not an object"),
    ],
)
def test_a_broken_itf_file_is_an_input_error(tmp_path: Path, edit: Any, message: str) -> None:
    path = tmp_path / "bad.itf.json"
    path.write_text(json.dumps(broken(edit)))
    with pytest.raises(InputError) as error:
        load.load(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_deep_nesting_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.itf.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="not JSON: RecursionError"):
        load.load(path)
