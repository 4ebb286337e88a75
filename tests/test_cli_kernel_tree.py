"""A kernel tree is someone else's: nothing written into it, findings in the
compilers' language, traces of ad-hoc rules that never overwrite each other."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli
from checker.cli.common import default_trace_directory, trace_directory_name
from checker.rules.specs import adhoc_rule, checkout_root, default_specs

from .conftest import ROOT, SPECS

KERNELS = Path(__file__).parent / "fixtures" / "kernels"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def files_under(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))


def test_check_and_gate_write_nothing_into_a_kernel_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "linux"
    shutil.copytree(KERNELS / "v3.x", tree)
    before = files_under(tree)
    monkeypatch.chdir(tree)

    checked = run("check", "--kernel", ".")
    assert checked.exit_code == 1, checked.output
    gated = run("gate", "--kernel", ".")
    assert gated.exit_code == 1, gated.output
    assert files_under(tree) == before
    assert "add --out DIR to write them, e.g. DIR/kernel-" in checked.stdout

    # --out is the way to ask for the traces, and they go only there
    out = tmp_path / "traces"
    assert run("check", "--kernel", ".", "--out", str(out)).exit_code == 1
    assert files_under(tree) == before
    # the fixture has no Makefile: v6.13, whose shadow MMU shows the lost flush
    assert any(out.rglob("stale_w-1vcpus-v6.13-shadow.json"))


def test_kernel_findings_read_like_compiler_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """file:line: severity: ..., the line of the rule's expression, the file as a
    compiler names it: relative to the current directory in the tree's root (as
    kbuild prints it), as the tree was given elsewhere. A safety violation is an
    error, precision a warning; each comes before the trace it is about."""
    tree = tmp_path / "linux"
    shutil.copytree(KERNELS / "v3.x", tree)
    monkeypatch.chdir(tree)
    lines = run("check", "--kernel", ".").stdout.splitlines()
    found = [line for line in lines if line.startswith("arch/")]
    assert [line.split(": ")[:3] for line in found] == [
        ["arch/x86/kvm/mmu.c:43", "error", "stale_w violated"],
        ["arch/x86/kvm/mmu.c:43", "error", "write_tracking violated"],
        ["arch/x86/kvm/mmu.c:43", "error", "assertion violated"],
    ]
    # one per line, before the traces they are about
    traces = [i for i, line in enumerate(lines) if "shortest trace" in line]
    assert lines.index(found[-1]) < traces[0]
    assert found[0].endswith("(4 steps, 1 vCPU)")

    gated = run("gate", "--kernel", ".").stdout.splitlines()
    finding = (
        "arch/x86/kvm/mmu.c:43: error: stale_w VIOLATES EXPECTATION: violated in 4 steps; "
        "the kernel gate (every property holds unless --expect PROPERTY=violated) says it holds"
    )
    assert finding in gated
    reproduce = [i for i, line in enumerate(gated) if line.startswith("  reproduce:")]
    assert gated.index(finding) < reproduce[0]

    # from above the tree, relative to there; from beside it, as the tree was given
    monkeypatch.chdir(tmp_path)
    lines = run("check", "--kernel", str(tree)).stdout.splitlines()
    assert "linux/arch/x86/kvm/mmu.c:43: error: stale_w violated" in "\n".join(lines)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for given in (str(tree), "../linux"):
        lines = run("check", "--kernel", given).stdout.splitlines()
        assert f"{given}/arch/x86/kvm/mmu.c:43: error: stale_w violated" in "\n".join(lines)


def test_gate_kernel_takes_the_tree_s_era(tmp_path: Path) -> None:
    """A tree keeping the old rule, its Makefile saying v6.12: gated in v6.4-v6.12, where
    the rule is imprecise (the prefetch refresh v6.13 removed); --era v6.13 overrides
    the Makefile, and there v6.13's callers assert the rule's answer."""
    tree = tmp_path / "linux"
    shutil.copytree(KERNELS / "v6.13", tree)
    spte = tree / "arch/x86/kvm/mmu/spte.h"
    text = spte.read_text()
    spte.write_text(text.replace("!is_mmu_writable_spte(new_spte)", "!is_writable_pte(new_spte)"))
    (tree / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\n")

    own = run("gate", "--kernel", str(tree))
    assert own.exit_code == 1 and "precision VIOLATES EXPECTATION" in own.stdout
    assert "paths v6.4-v6.12/shadow," in own.stdout
    era = run("gate", "--kernel", str(tree), "--era", "v6.13")
    assert era.exit_code == 1, era.output
    assert "paths v6.13/shadow," in era.stdout
    assert "precision VIOLATES" not in era.stdout
    assert "assertion VIOLATES EXPECTATION" in era.stdout
    # an override is taken too, and shown
    changed = run("gate", "--kernel", str(tree), "--era", "v6.13", "--harvest-flush", "never")
    assert "paths v6.13/shadow+harvest_flush=never" in changed.stdout


def test_gate_messages_name_no_lockfile_and_no_expect_table_for_a_kernel() -> None:
    result = run("gate", "--kernel", str(KERNELS / "v6.12"))
    assert result.exit_code == 1
    assert "[expect]" not in result.stdout and "verdicts.lock.json" not in result.stdout
    assert result.stdout.startswith("gate: 1 rule against its expectations (no lockfile);")


def test_profile_goes_with_kernel_in_the_gate() -> None:
    result = run("gate", "--era", "v6.4-v6.12", "--specs", str(SPECS))
    assert result.exit_code == 2
    assert "--era goes with --kernel" in result.stderr


def test_ad_hoc_traces_are_named_by_their_formula(tmp_path: Path) -> None:
    legacy = "is_writable_pte(old_spte) && !is_writable_pte(new_spte)"
    old = "is_mmu_writable_spte(old_spte) && !is_writable_pte(new_spte)"
    # the same rule however written: the same folder; another rule: another one
    same = "(is_writable_pte(old_spte)) && !(is_writable_pte(new_spte))"
    assert trace_directory_name(adhoc_rule(legacy)) == trace_directory_name(adhoc_rule(same))
    assert trace_directory_name(adhoc_rule(legacy)) != trace_directory_name(adhoc_rule(old))

    written = {}
    for text in (legacy, old):
        result = run("check", "--expr", text, "--out", str(tmp_path), "--specs", str(SPECS))
        assert result.exit_code == 1
        folder = trace_directory_name(adhoc_rule(text))
        assert folder.startswith("expr-") and len(folder) == len("expr-") + 8
        # both violate assertion in v6.13's shadow MMU (no --era: the newest)
        trace = tmp_path / folder / "assertion-1vcpus-v6.13-shadow.json"
        assert f"written to {trace}" in result.stdout  # the name is printed
        written[text] = trace
    # both assertion traces are kept, each with its own rule
    for text, trace in written.items():
        assert f'"expression": "{text}"' in trace.read_text()


def test_specs_and_traces_default_to_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert checkout_root() == ROOT
    monkeypatch.chdir(ROOT)
    assert default_specs() == Path("specs")
    assert default_trace_directory() == Path("counterexamples")
    monkeypatch.chdir(ROOT / "tests")
    assert default_specs() == SPECS
    assert default_trace_directory() == ROOT / "counterexamples"
    monkeypatch.chdir(tmp_path)  # outside the checkout
    assert default_trace_directory() is None


def test_version_names_checker_z3_and_python() -> None:
    result = run("--version")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["checker", "z3", "Python"]


def test_an_installed_checker_run_in_a_checkout_reads_its_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout is recognised from the current directory too (a pre-commit hook
    runs an installed checker at the repository's root): its specs/ are read."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(SPECS, tmp_path / "specs")
    (tmp_path / "specs" / "rules" / "old.toml").unlink()
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    assert checkout_root() == tmp_path
    assert default_specs() == tmp_path / "specs"
    result = run("rules")
    assert result.stdout.splitlines()[0] == f"specs: {tmp_path / 'specs'} (the checkout's)"
    assert "  old " not in result.stdout
