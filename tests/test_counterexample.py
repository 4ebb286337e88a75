"""Loading a counterexample for viewing: parse, replay, and the graph it came from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.errors import InputError
from checker.traces import graph, load

from .conftest import COUNTEREXAMPLES

#: a committed write-tracking counterexample of the legacy rule (in v3.15 .. v4.3,
#: before 198c74f43f0f's harvest flush)
WRITE_TRACKING = (
    COUNTEREXAMPLES
    / "history"
    / "198c74f43f0f-legacy-write-tracking"
    / "after-write_tracking-1vcpus-v3.15-v4.3-shadow.json"
)


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_a_committed_file_loads_replayed_with_its_provenance(suffix: str) -> None:
    path = WRITE_TRACKING.with_suffix(suffix)
    cx = load.load(path)
    assert cx.trace.depth == 5 and cx.trace.prop.name == "write_tracking"
    assert cx.trace.rule_name == "legacy" and cx.source == str(path)
    assert cx.provenance.command == (
        "checker check --rule legacy --vcpus 1 --era v3.15-v4.3 --mmu shadow"
    )
    assert cx.provenance.era == "v3.15-v4.3/shadow"
    assert cx.provenance.expression.startswith("is_writable_pte(old_spte)")
    assert cx.provenance.checker_version and cx.provenance.z3_version


def test_its_graph_is_the_file_it_was_read_from() -> None:
    path = COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json"
    assert graph.node_link_json(load.load(path).graph()) == path.read_text()


def test_a_file_whose_trace_does_not_replay_is_an_input_error(tmp_path: Path) -> None:
    data = json.loads(
        (COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json").read_text()
    )
    data["nodes"][2]["writable"] = True  # a state the step function does not reach
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"edited\.json: .*failed to replay.*regenerate"):
        load.load(path)


def test_a_file_whose_expression_does_not_parse_is_an_input_error(tmp_path: Path) -> None:
    data = json.loads(
        (COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json").read_text()
    )
    data["graph"]["expression"] = "is_writable_pte(old_spte) &&"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="its rule expression does not parse"):
        load.load(path)


def test_a_rule_expression_nested_too_deeply_is_an_input_error(tmp_path: Path) -> None:
    data = json.loads(
        (COUNTEREXAMPLES / "old" / "precision-1vcpus-v6.4-v6.12-shadow.json").read_text()
    )
    data["graph"]["expression"] = "(" * 5000 + "is_writable_pte(old_spte)" + ")" * 5000
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(data))
    # refused by the C parser's own bracket limit, before any recursion
    with pytest.raises(InputError, match=r"its rule expression does not parse \(.*more than 100"):
        load.load(path)


# --- fuzzing: hostile trace files load, or are one-line input errors -----------------------

FUZZ_SEEDS = sorted(COUNTEREXAMPLES.rglob("*.json")) + sorted(COUNTEREXAMPLES.rglob("*.graphml"))
#: what loading one file may use at most (the largest seed needs about 1 MB)
FUZZ_MEMORY = 64 * 1024 * 1024
FUZZ_SECONDS = 5


def _seed_files() -> list[tuple[str, bytes]]:
    """Each committed trace's bytes, and an ITF export of one of them."""
    from checker.traces import itf

    seeds = [(p.name, p.read_bytes()) for p in FUZZ_SEEDS]
    exported = itf.itf_text(load.load(FUZZ_SEEDS[0]))
    return [*seeds, ("trace.itf.json", exported.encode())]


SEEDS = _seed_files()

#: values a crafted file might hold in place of any other
hostile_values = st.one_of(
    st.sampled_from([10**9, 10**12, 10**30, -5, -1, 0, 1, 2, 257, 1001, 2**63, "2", "", []]),
    st.sampled_from(["(" * 3000 + "true" + ")" * 3000, "!" * 10000 + "true", "[" * 3000]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.text(alphabet="\x00\x07\x1b\x9b\n]0;[", max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["#bigint", "#map", "tag", "value", "x"]), st.integers()),
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as the keys leading to it."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _places(item, (*path, i))
    return found


#: metadata a crafted file would aim at: sizes things are built from, and texts shown
TARGETS = ("vcpus", "depth", "rule", "expression", "command", "era", "property", "schema")
#: sizes that once made the reader allocate without bound (10**9 vCPUs: 24 GB)
HUGE = st.sampled_from([10**9, 10**12, 10**30, 2**63, -5, -(10**9)])


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """Random bytes or nesting; a committed trace with bytes flipped, cut or
    inserted; or one with a JSON value replaced: anywhere, or in the metadata."""
    how = draw(st.sampled_from(["random", "nested", "bytes", "value", "metadata", "size"]))
    if how in ("random", "nested"):
        name = draw(st.sampled_from(["t.json", "t.graphml", "t.itf.json"]))
        if how == "nested":
            opening = draw(st.sampled_from([b"[", b'{"a":', b"<a>"]))
            return name, opening * draw(st.integers(1, 200_000))
        return name, draw(st.binary(max_size=512))
    name, data = draw(st.sampled_from(SEEDS))
    if how == "bytes":
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(buffer) - 1))
            edit = draw(st.sampled_from(["flip", "cut", "insert"]))
            if edit == "flip":
                buffer[at] = draw(st.integers(0, 255))
            elif edit == "cut":
                del buffer[at : at + draw(st.integers(1, 64))]
            else:
                buffer[at:at] = draw(st.binary(min_size=1, max_size=16))
        return name, bytes(buffer)
    key = draw(st.sampled_from(TARGETS if how != "size" else ("vcpus", "depth")))
    value = draw(HUGE if how == "size" else hostile_values)
    if name.endswith(".graphml"):
        import networkx as nx

        g = nx.parse_graphml(data.decode())
        g.graph[key] = value if isinstance(value, int | str | float) else str(value)
        return name, "\n".join(nx.generate_graphml(g)).encode()
    document = json.loads(data)
    if how == "value":
        place = draw(st.sampled_from(_places(document)[1:]))
        parent = document
        for step in place[:-1]:
            parent = parent[step]
        parent[place[-1]] = value
    elif name.endswith(".itf.json"):
        document["#meta"]["checker"][key] = value
    else:
        document["graph"][key] = value
    return name, json.dumps(document).encode()


@settings(
    max_examples=int(os.environ.get("CHECKER_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(hostile_files())
def test_fuzzed_trace_files_load_or_are_one_line_input_errors(file: tuple[str, bytes]) -> None:
    """Every outcome is a replayed trace or an InputError of one line: never another
    exception, never a hang (SIGALRM after FUZZ_SECONDS), never more than
    FUZZ_MEMORY of Python memory."""
    import signal
    import tempfile
    import tracemalloc

    name, data = file

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"loading took more than {FUZZ_SECONDS} s")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, FUZZ_SECONDS)
        tracemalloc.start()
        try:
            loaded = load.load(path)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{path}: "), str(exc)
        else:
            assert loaded.trace.depth == len(loaded.trace.steps) >= 0
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert peak < FUZZ_MEMORY, f"loading took {peak} bytes"
