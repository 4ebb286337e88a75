"""A session certifies for every vCPU count in the context of its encodings (z3's
main one), not in a context of its own: making a context costs a process more
than most certifications, and the answers are the logic's, wherever the terms live."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from checker.engines import check as check_module
from checker.engines.check import Options, Session, check_property
from checker.engines.parametric import AllVcpus
from checker.engines.smt import Budget
from checker.model import PROPERTIES, System
from checker.rules.specs import Rule


def test_a_session_certifies_every_vcpu_count_in_its_encodings_context(
    systems: dict[str, System],
) -> None:
    session = Session(systems["new"])
    assert session.all_vcpus.vocab.ctx is session(2).context is z3.main_ctx()


def test_a_warm_check_makes_no_context(
    shipped_rules: dict[str, Rule], monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = shipped_rules["new"]
    options = Options()
    session = Session(System(rule, options.paths, options.shape))
    proofs = [check_property(rule, p, options, session).proof for p in PROPERTIES]
    made: list[Any] = []
    real = z3.Context

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(z3, "Context", counted)
    # the invariants found above, certified again as a run with hints does
    fresh = Session(System(rule, options.paths, options.shape))
    for prop, proof in zip(PROPERTIES, proofs, strict=True):
        assert proof is not None
        check_module.certify(fresh(2), prop, proof.invariant, Budget())
        assert fresh.all_vcpus.certify(prop, proof.invariant, Budget()).ok, prop.name
    assert made == []


def test_the_answers_are_those_of_a_fresh_context(
    shipped_rules: dict[str, Rule], systems: dict[str, System]
) -> None:
    for name in ("new", "old", "legacy"):
        rule = shipped_rules[name]
        session = Session(systems[name])
        for prop in PROPERTIES:
            result = check_property(rule, prop, Options(), session)
            if result.proof is None:
                continue
            alone = AllVcpus(systems[name]).certify(prop, result.proof.invariant, Budget())
            assert result.proof.all_vcpus == alone, (name, prop.name)
