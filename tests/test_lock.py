"""The lockfile: hashes, canonical bytes, round trips and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from checker.engines.check import Options, check_property
from checker.model import PROPERTY_BY_NAME, HarvestFlush, Paths
from checker.report import lock
from checker.rules.specs import Rule
from checker.verdict import Verdict

from .conftest import SPECS

SHIPPED_LOCK = SPECS / lock.LOCK_NAME


@pytest.mark.parametrize(
    "text",
    [
        "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)",
        "is_mmu_writable_spte(old_spte)&&!is_mmu_writable_spte(new_spte)",
        "is_mmu_writable_spte( old_spte ) &&\n\t! is_mmu_writable_spte(new_spte)  ",
        "is_mmu_writable_spte(old_spte) /* MW cleared */ && // why\n"
        "!is_mmu_writable_spte(new_spte)",
    ],
)
def test_expression_hash_ignores_comments_and_layout(
    shipped_rules: dict[str, Rule], text: str
) -> None:
    new = shipped_rules["new"]
    assert lock.normalise_expression(text) == (
        "is_mmu_writable_spte(old_spte)&&!is_mmu_writable_spte(new_spte)"
    )
    assert lock.expression_sha256(dataclasses.replace(new, expression=text)) == (
        lock.expression_sha256(new)
    )


def test_expression_hash_follows_the_text(shipped_rules: dict[str, Rule]) -> None:
    new, old = shipped_rules["new"], shipped_rules["old"]
    assert lock.expression_sha256(new) != lock.expression_sha256(old)
    # the same meaning in other words is another text: the lock goes stale
    other = "is_mmu_writable_spte(old_spte) && !(new_spte & shadow_mmu_writable_mask)"
    assert lock.expression_sha256(dataclasses.replace(new, expression=other)) != (
        lock.expression_sha256(new)
    )
    # word boundaries are kept: "unsigned long" is not "unsignedlong"
    assert lock.normalise_expression("(unsigned  long)x") == "(unsigned long)x"


def test_model_hash_is_stable_rule_independent_and_follows_the_paths() -> None:
    first = lock.model_sha256(Paths(), 2, 30)
    assert first == lock.model_sha256(Paths(), 2, 30)
    assert len(first) == 64
    assert lock.model_sha256(Paths(harvest_flush=HarvestFlush.CHANGED), 2, 30) != first
    assert lock.model_sha256(Paths(), 3, 30) != first
    assert lock.model_sha256(Paths(), 2, 31) != first


def test_trace_and_invariant_hashes_are_deterministic(shipped_rules: dict[str, Rule]) -> None:
    legacy, new = shipped_rules["legacy"], shipped_rules["new"]
    tracking = PROPERTY_BY_NAME["write_tracking"]
    trace = check_property(legacy, tracking, Options()).trace
    again = check_property(legacy, tracking, Options()).trace
    assert trace is not None and again is not None
    assert lock.trace_sha256(trace) == lock.trace_sha256(again)
    assert lock.action_labels(trace) == [
        "vcpu0 page_fault(host_writable, !write_fault)",
        "vcpu0 guest_access",
        "host aging",
        "vcpu0 write_protect",
        "vcpu0 guest_write",
    ]
    # versions, files and commands are not part of the trace's hash
    assert "version" not in json.dumps(lock.canonical_trace(trace))
    proof = check_property(new, PROPERTY_BY_NAME["stale_w"], Options()).proof
    assert proof is not None
    entry = lock.property_lock(check_property(new, PROPERTY_BY_NAME["stale_w"], Options()))
    assert entry is not None and entry.verdict is Verdict.HOLDS
    assert entry.invariant_sha256 == lock.invariant_sha256(proof.invariant)
    assert entry.lemmas == tuple(proof.invariant.render())


def test_the_shipped_lock_round_trips_byte_for_byte() -> None:
    text = SHIPPED_LOCK.read_text(encoding="utf-8")
    read = lock.read(SHIPPED_LOCK)
    assert read is not None
    assert lock.render(read) == text
    assert sorted(read.rules) == ["legacy", "new", "old"]
    assert read.rules["legacy"].properties["stale_w"].counterexample_length == 4
    assert read.rules["new"].formula == "MW(old) && !MW(new)"


def test_write_is_atomic_and_canonical(tmp_path: Path) -> None:
    read = lock.read(SHIPPED_LOCK)
    assert read is not None
    target = tmp_path / "verdicts.lock.json"
    lock.write(read, target)
    assert target.read_bytes() == SHIPPED_LOCK.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["verdicts.lock.json"]


def test_a_missing_lock_reads_as_none(tmp_path: Path) -> None:
    assert lock.read(tmp_path / "verdicts.lock.json") is None


def test_a_fifo_as_lock_is_refused_not_waited_on(tmp_path: Path, deadline: None) -> None:
    path = tmp_path / "verdicts.lock.json"
    os.mkfifo(path)
    with pytest.raises(
        lock.LockError, match=r"lock.json: not a regular file \(a FIFO\); pass a lockfile$"
    ):
        lock.read(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "{not json", "not a lockfile: invalid JSON at line 1"),
        (lambda d: {**d, "schema": "other/9"}, "field 'schema': expected"),
        (lambda d: {k: v for k, v in d.items() if k != "model"}, "field 'model': missing"),
        (
            lambda d: _set(d, ["rules", "new", "properties", "stale_w", "verdict"], "maybe"),
            "field 'rules.new.properties.stale_w.verdict': expected 'holds' or 'violated'",
        ),
        # an undecided verdict is never locked
        (
            lambda d: _set(d, ["rules", "new", "properties", "stale_w", "verdict"], "inconclusive"),
            "field 'rules.new.properties.stale_w.verdict': expected 'holds' or 'violated', "
            "got 'inconclusive'",
        ),
        (
            lambda d: _set(d, ["rules", "old", "properties", "assertion", "counterexample"], 3),
            "field 'rules.old.properties.assertion.counterexample': has the wrong type",
        ),
        (
            lambda d: _set(d, ["model", "vcpus"], True),
            "field 'model.vcpus': has the wrong type",
        ),
        # values a crafted lock could feed the model with
        (lambda d: _set(d, ["model", "vcpus"], 10**30), "field 'model.vcpus': 10000000000"),
        (lambda d: _set(d, ["model", "vcpus"], 0), "field 'model.vcpus': 0 is outside 1..256"),
        (
            lambda d: _set(d, ["model", "depth_bound"], -5),
            "field 'model.depth_bound': -5 is outside 1..1000",
        ),
        (
            lambda d: _set(d, ["model", "paths", "flush_sometimes"], "yes"),
            "field 'model.paths.flush_sometimes': unknown choice (choices: mmu, harvest_flush",
        ),
        (
            lambda d: _set(d, ["model", "paths", "harvest_flush"], "maybe"),
            "field 'model.paths.harvest_flush': expected one of reaped",
        ),
        (
            lambda d: _set(
                d, ["rules", "old", "properties", "assertion", "counterexample", "length"], -1
            ),
            "field 'rules.old.properties.assertion.counterexample.length': -1 is outside 0..1000",
        ),
        (
            lambda d: _set(d, ["model", "sha256"], "\x1b]0;title\x07"),
            "field 'model.sha256': is not a sha256",
        ),
        (
            lambda d: _set(d, ["rules", "new", "properties", "speed"], {"verdict": "holds"}),
            "field 'rules.new.properties': 'speed' is not one of stale_w",
        ),
        (
            lambda d: _set(d, ["rules", "bad\nname"], {}),
            "field 'rules': 'bad\\nname' is not a rule name",
        ),
    ],
)
def test_a_malformed_lock_is_one_line_naming_the_field(
    tmp_path: Path, edit: object, message: str
) -> None:
    data = json.loads(SHIPPED_LOCK.read_text())
    changed = edit(data)  # type: ignore[operator]
    path = tmp_path / "verdicts.lock.json"
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(lock.LockError) as error:
        lock.read(path)
    text = str(error.value)
    assert message in text and "\n" not in text
    assert "checker gate --update" in text


def _set(data: dict[str, object], keys: list[str], value: object) -> dict[str, object]:
    node: dict[str, object] = data
    for key in keys[:-1]:
        node = node[key]  # type: ignore[assignment]
    node[keys[-1]] = value
    return data
