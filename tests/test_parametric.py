"""Invariants certified for every number of vCPUs, over an uninterpreted vCPU sort."""

from __future__ import annotations

from checker.engines.check import Options, check_property
from checker.engines.invariant import Invariant, Lemma, Lit, Var
from checker.engines.parametric import certify_all
from checker.engines.smt import Answer, Budget
from checker.model import PROPERTIES, PROPERTY_BY_NAME, Kind, Property, System
from checker.rules.specs import Rule

STALE_W = PROPERTY_BY_NAME["stale_w"]


def test_every_proof_of_the_shipped_rules_holds_for_every_vcpu_count(
    shipped_rules: dict[str, Rule],
) -> None:
    for rule in shipped_rules.values():
        for prop in PROPERTIES:
            result = check_property(rule, prop, Options())
            if result.proof is not None:
                assert result.proof.all_vcpus is not None and result.proof.all_vcpus.ok, prop.name


def test_a_weak_invariant_is_rejected(systems: dict[str, System]) -> None:
    weak = Invariant.of([Lemma(1, (Lit(Var("mmu_writable")), Lit(Var("tlb_writable", 0), False)))])
    cert = certify_all(systems["new"], STALE_W, weak, Budget())
    assert cert.consecution is Answer.SAT and not cert.ok


def test_true_does_not_prove_a_violated_property(systems: dict[str, System]) -> None:
    cert = certify_all(systems["legacy"], STALE_W, Invariant(()), Budget())
    assert cert.safety is Answer.SAT and not cert.ok


def test_a_lemma_true_only_for_one_vcpu_is_rejected(systems: dict[str, System]) -> None:
    """'No two vCPUs both cache the gfn' is vacuous with one vCPU, false with two."""
    at_most_one = Lemma(2, (Lit(Var("tlb_cached", 0), False), Lit(Var("tlb_cached", 1), False)))
    cert = certify_all(
        systems["new"], PROPERTY_BY_NAME["encoding"], Invariant((at_most_one,)), Budget()
    )
    assert cert.consecution is Answer.SAT


def test_a_bad_predicate_over_all_vcpus_is_refused(systems: dict[str, System]) -> None:
    """The Skolem vCPU reading needs 'some vCPU ...'; 'every vCPU ...' is refused."""

    def all_writable(L, shared, vcpus, spte_of):  # type: ignore[no-untyped-def]
        return L.and_(*(v.tlbs[0].writable for v in vcpus))

    everyone = Property("everyone", "t", "s", Kind.STATE, True, bad_state=all_writable)
    cert = certify_all(systems["new"], everyone, Invariant(()), Budget())
    assert not cert.ok and "not of the form 'some vCPU" in cert.reason
