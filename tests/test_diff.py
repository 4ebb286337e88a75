"""Rule diffs over every reachable update."""

from __future__ import annotations

from checker.engines import diff
from checker.model import OPERATION_BY_NAME, System
from checker.rules.specs import Rule


def compare(rules: dict[str, Rule], a: str, b: str, vcpus: int = 2) -> diff.Comparison:
    return diff.diff((a, System(rules[a])), (b, System(rules[b])), vcpus)


def test_old_versus_new_is_the_seed_thread(shipped_rules: dict[str, Rule]) -> None:
    """They differ exactly on updates that keep MW set while W ends clear, reached
    through a refresh (old flushes for nothing), or aging's access-tracking or a
    dirty-log write-protect (the rule's answer is ignored by its caller: v6.4 ..
    v6.12's shadow MMU, the default paths)."""
    c = compare(shipped_rules, "old", "new")
    assert c.differences
    for d in c.differences:
        cls = d.update_class
        assert cls.old.mmu_writable and cls.new.mmu_writable and not cls.new.writable
        assert d.a_flushes and not d.b_flushes
        assert set(d.operations) <= {"prefetch", "aging", "harvest", "enable_dirty_logging"}
        if d.decided:
            assert "prefetch" in d.operations
            assert "UNNECESSARY" in d.judgement(d.a_flushes)
        else:
            assert "ignored" in d.judgement(d.a_flushes)
    assert len(c.a.unnecessary) > 0 and c.b.unnecessary == [] and c.a.missed == c.b.missed == []
    assert len(c.a.flushed) - len(c.b.flushed) == len(c.a.unnecessary)


def test_legacy_misses_flushes_new_makes(shipped_rules: dict[str, Rule]) -> None:
    c = compare(shipped_rules, "legacy", "new")
    missed = [d for d in c.differences if not d.a_flushes and d.decided]
    assert missed and all(d.update_class.clears_mmu_writable for d in missed)
    assert all("MISSES A NEEDED FLUSH" in d.judgement(False) for d in missed)
    # the witness shows the stale writable entry a missed flush leaves behind
    assert all(d.witness.stale_writable for d in missed)
    assert len(c.a.missed) > 0 and c.b.missed == []


def test_witnesses_replay_and_end_with_an_update_of_the_class(
    shipped_rules: dict[str, Rule],
) -> None:
    c = compare(shipped_rules, "legacy", "new")
    systems = {"legacy": System(shipped_rules["legacy"]), "new": System(shipped_rules["new"])}
    for d in c.differences:
        steps = diff.replay_witness(systems[d.witness.rule], d.witness)
        last = steps[-1]
        assert last.outcome.rule_consulted
        assert (last.before.shared.sptes[0], last.after.shared.sptes[0]) == (
            d.update_class.old,
            d.update_class.new,
        )
        if d.decided:
            assert OPERATION_BY_NAME[last.action.op].flush.value == "rule"


def test_a_rule_against_itself_has_no_difference(shipped_rules: dict[str, Rule]) -> None:
    c = compare(shipped_rules, "new", "new")
    assert c.differences == () and len(c.a.updates) == len(c.b.updates)


def test_updates_do_not_grow_with_vcpus(shipped_rules: dict[str, Rule]) -> None:
    two, three = compare(shipped_rules, "old", "new", 2), compare(shipped_rules, "old", "new", 3)
    assert two.a.updates == three.a.updates
    assert [d.update_class for d in two.differences] == [d.update_class for d in three.differences]
