"""GitHub Actions: escaped ::error annotations and the Markdown step summary."""

from __future__ import annotations

from checker.report import github
from checker.report.gate import GateReport


def test_escaping_follows_the_workflow_command_rules() -> None:
    assert github.escape_data("50% done\r\nnext: a, b") == "50%25 done%0D%0Anext: a, b"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert github.command("error", "x\ny", file="a,b.toml", line=3, title="t: u") == (
        "::error file=a%2Cb.toml,line=3,title=t%3A u::x%0Ay"
    )
    assert github.command("warning", "100%") == "::warning::100%25"


def test_one_error_per_failing_rule_and_property(regressed_report: GateReport) -> None:
    lines = github.annotation_commands(regressed_report)
    assert all("\n" not in line for line in lines)
    errors = [line for line in lines if line.startswith("::error file=specs/rules/new.toml,")]
    assert len(errors) == 3
    assert errors[0].startswith(
        "::error file=specs/rules/new.toml,line=2,title=REGRESSED%3A stale_w (new)::"
        "rule new: stale_w REGRESSED: holds in the lock, now violated in 4 steps%0A"
        "trace: vcpu0 page_fault(host_writable, !write_fault), vcpu0 guest_access, "
        "host enable_dirty_logging(!initially_set), vcpu0 sync_spte(!guest_writable)%0A"
        "reproduce: checker check --rule new --vcpus 2"
    )
    assert lines[-1].startswith(
        "::error file=specs/verdicts.lock.json,line=1,title=stale lockfile::the lockfile is stale:"
    )
    assert "checker gate --update" in lines[-1] and "make lock" in lines[-1]
    # violations the lock already records (legacy's, old's) are not annotated
    assert len(lines) == 4


def test_the_step_summary_has_the_verdict_table_and_each_trace(
    regressed_report: GateReport,
) -> None:
    text = github.step_summary(regressed_report)
    assert text.startswith("## KVM TLB-flush gate: FAIL (exit 1)\n")
    assert "| rule | property | verdict | expected | locked | status |" in text
    assert "| new | stale_w | violated | violated | holds | **REGRESSED** |" in text
    assert "### new: write_tracking REGRESSED" in text
    assert (
        "| 4 | write_protect |   | spte_write_protect | P -MW HW | 0x0a00* "
        "| 0x0200000000000800* | rw | +tracked logging enable-in-flight | no "
        "| is_writable_pte(old_spte)=0 && !is_writable_pte(new_spte)=1 → no flush |"
    ) in text
    assert "Reproduce: `checker check --rule new --vcpus 2`" in text
    assert "### The lockfile is stale" in text
    assert "- rule new: expression changed" in text
    # a pipe inside a cell cannot break the table
    assert github._cell("a || b") == "a \\|\\| b"
