"""What ``check`` writes and prints for rule text and paths with control characters:
every trace it writes loads, shows, lists and exports again, its reproduce command
pastes into bash, and no such character reaches the terminal raw."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from checker.cli import cli
from checker.cli.common import shell_join
from checker.text import one_line
from checker.traces.graph import read_counterexample

from .conftest import SPECS
from .scenarios import LEGACY

KERNELS = Path(__file__).parent / "fixtures" / "kernels"

#: a multi-line --expr, a tab in it: the trace's 'command' metadata held them raw
MULTI_LINE = "is_writable_pte(old_spte) &&\n\t!is_writable_pte(new_spte)"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def raw_control(text: str) -> bool:
    """``text`` holds a control character other than the line ends between lines."""
    return any(c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in text)


def assert_traces_read_back(out: Path) -> list[Path]:
    traces = sorted(out.rglob("*.json")) + sorted(out.rglob("*.graphml"))
    assert traces
    for trace in traces:
        loaded = read_counterexample(trace)
        assert "\n" not in loaded.graph.graph["command"]
        shown = run("show", str(trace))
        assert shown.exit_code == 0, shown.output
        assert not raw_control(shown.stdout)
        exported = run("export", str(trace), "-o", str(trace.with_suffix(".itf.json")))
        assert exported.exit_code == 0, exported.output
    listed = run("list", str(out))
    assert listed.exit_code == 0, listed.output
    return traces


def bash_arguments(command: str) -> list[str]:
    """The arguments bash passes to ``command`` when it is pasted into it."""
    printed = subprocess.run(
        ["bash", "-c", "f() { printf '%s\\0' \"$@\"; }; f " + command.removeprefix("checker ")],
        capture_output=True,
        check=True,
    ).stdout
    return printed.decode("utf-8").split("\0")[:-1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_multi_line_expr_writes_traces_the_checker_reads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    checked = run("check", "--expr", MULTI_LINE, "--out", str(out))
    assert checked.exit_code == 1, checked.output
    assert not raw_control(checked.stdout)
    assert f"rule expr: {LEGACY}" in checked.stdout.splitlines()
    traces = assert_traces_read_back(out)
    command = read_counterexample(traces[0]).graph.graph["command"]
    assert command.startswith(
        "checker check --expr $'is_writable_pte(old_spte) &&\\n\\t!is_writable_pte(new_spte)' "
    )
    assert bash_arguments(command)[:2] == ["check", "--expr"]
    assert bash_arguments(command)[2] == MULTI_LINE


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_a_kernel_tree_path_with_control_characters(tmp_path: Path) -> None:
    """A tree at ``kn/tr<newline>ee<ESC>[31m``: the traces load, the compiler-style
    findings and the reproduce command show the path escaped, and the command still
    names the tree."""
    tree = tmp_path / "kn" / "tr\nee\x1b[31m"
    shutil.copytree(KERNELS / "v3.x", tree)
    out = tmp_path / "out"
    checked = run("check", "--kernel", str(tree), "--out", str(out))
    assert checked.exit_code == 1, checked.output
    assert not raw_control(checked.stdout)
    assert "tr\\nee\\x1b[31m/arch/x86/kvm/mmu.c:43: error: stale_w violated" in checked.stdout
    traces = assert_traces_read_back(out)
    command = read_counterexample(traces[0]).graph.graph["command"]
    assert bash_arguments(command)[:3] == ["check", "--kernel", str(tree)]
    gated = run("gate", "--kernel", str(tree))
    assert gated.exit_code == 1, gated.output
    assert not raw_control(gated.stdout)


def test_shell_quoting_keeps_plain_arguments_as_shlex_does() -> None:
    assert shell_join(["checker", "check", "--rule", "new"]) == "checker check --rule new"
    assert shell_join(["--expr", "a && b"]) == "--expr 'a && b'"
    assert shell_join(["a'\\\n\x1b\u202e"]) == "$'a\\'\\\\\\n\\x1b\\u202e'"


#: a spec's expression over several lines, with a ``//`` comment in it
EXPRESSION = "is_writable_pte(old_spte) && // W, not MW\n\t!is_writable_pte(new_spte)\n"
SHOWN = "is_writable_pte(old_spte) && // W, not MW \\n !is_writable_pte(new_spte)"


def multiline_specs(tmp_path: Path) -> Path:
    """The shipped specs, with rule new's expression as :data:`EXPRESSION`, in a
    folder whose name holds an escape."""
    specs = tmp_path / "spe\x1bcs"
    shutil.copytree(SPECS, specs)
    rule = specs / "rules" / "new.toml"
    text = rule.read_text()
    old = 'expression = "is_mmu_writable_spte(old_spte) && !is_mmu_writable_spte(new_spte)"'
    assert old in text
    rule.write_text(text.replace(old, f'expression = """\n{EXPRESSION}"""'))
    return specs


def test_rule_text_is_shown_on_one_line(tmp_path: Path) -> None:
    """A spec's expression over several lines, a ``//`` comment in it: ``rules`` and
    ``check`` show it on one line, the comment's end as ``\\n``."""
    specs, shown = multiline_specs(tmp_path), SHOWN
    assert one_line(EXPRESSION) == shown

    listed = run("rules", "--specs", str(specs))
    assert listed.exit_code == 0, listed.output
    assert not raw_control(listed.stdout)
    assert f"  new          {shown}   [v6.13+; era v6.13]" in listed.stdout.splitlines()
    assert "spe\\x1bcs" in listed.stdout.splitlines()[0]

    checked = run("check", "--rule", "new", "--specs", str(specs), "--out", str(tmp_path / "o"))
    assert checked.exit_code == 1, checked.output
    assert not raw_control(checked.stdout)
    assert f"rule new: {shown}" in checked.stdout.splitlines()


def test_the_gate_shows_rule_text_on_one_line(tmp_path: Path) -> None:
    """As :func:`test_rule_text_is_shown_on_one_line`, for ``gate``."""
    specs, shown = multiline_specs(tmp_path), SHOWN
    gated = run("gate", "--specs", str(specs))
    assert gated.exit_code == 1, gated.output
    assert not raw_control(gated.stdout)
    assert any(line.startswith(f"  rule: {shown} (") for line in gated.stdout.splitlines())
