"""The TLC-like graph: DOT text and the SVG drawn from the same nodes and edges."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from checker.traces import dot, load

from .conftest import COUNTEREXAMPLES
from .traces import classic

#: a committed write-tracking counterexample of the legacy rule (in v3.15 .. v4.3,
#: before 198c74f43f0f's harvest flush)
WRITE_TRACKING = (
    COUNTEREXAMPLES
    / "history"
    / "198c74f43f0f-legacy-write-tracking"
    / "after-write_tracking-1vcpus-v3.15-v4.3-shadow.json"
)

SVG = "{http://www.w3.org/2000/svg}"


def test_one_node_per_step_and_an_action_on_each_edge() -> None:
    d = dot.drawing(classic())
    assert [n.step for n in d.nodes] == list(range(8))
    assert [e.step for e in d.edges] == list(range(1, 8))
    assert [line.text for line in d.edges[4].lines] == [
        "host: harvest",
        "kvm_arch_mmu_enable_log_dirty_pt_masked",
        "no flush",
    ]
    assert d.edges[1].lines[-1].text == "flush"
    assert d.nodes[4].lines[3].text == "tlb vcpu0=none vcpu1=rw" and d.nodes[4].lines[3].changed
    assert not d.nodes[4].lines[1].changed


def test_only_the_violating_step_is_red() -> None:
    d = dot.drawing(classic())
    assert [n.step for n in d.nodes if n.violation] == [7]
    assert [e.step for e in d.edges if e.violation] == [7]


def test_dot_ranks_steps_and_names_them_for_svg() -> None:
    text = dot.dot_text(classic())
    assert text.startswith("digraph counterexample {\n") and text.endswith("}\n")
    for k in range(8):
        assert f"  step{k} [id=step{k}, label=" in text
        assert f"  {{ rank=same; step{k}; }}" in text
    for k in range(1, 8):
        assert f"  step{k - 1} -> step{k} [id=edge{k}, label=" in text
    [red_node] = [line for line in text.splitlines() if line.startswith("  step7 [")]
    assert 'color="#c62828"' in red_node
    assert 'label="vcpu1: guest_write\\lguest store\\l", color="#c62828"' in text
    # every statement sits on one line with balanced quotes
    for line in text.splitlines()[1:-1]:
        assert line.endswith((";", "}")) and line.replace('\\"', "").count('"') % 2 == 0, line


def test_dot_escapes_quotes_and_backslashes() -> None:
    assert dot._quote('say "hi" \\ now\nnext') == '"say \\"hi\\" \\\\ now\\nnext"'


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_svg_is_well_formed_with_addressable_steps() -> None:
    root = parse(dot.svg_text(classic()))
    assert root.tag == f"{SVG}svg"
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert {f"step{k}" for k in range(8)} <= set(groups)
    assert {f"edge{k}" for k in range(1, 8)} <= set(groups)
    assert "violation" in (groups["step7"].get("class") or "")
    assert "violation" not in (groups["step6"].get("class") or "")
    texts = ["".join(t.itertext()) for t in groups["step4"].iter(f"{SVG}text")]
    assert texts == [
        "step 4",
        "SPTE P W MW HW",
        "x86 0x0e02 EPT 0x0600000000000802",
        "tlb vcpu0=none vcpu1=rw",
        "gfn logging dirty-bit",
    ]
    changed = [t for t in groups["step4"].iter(f"{SVG}text") if t.get("class") == "changed"]
    assert ["".join(t.itertext()) for t in changed] == ["tlb vcpu0=none vcpu1=rw"]


def test_svg_boxes_hold_their_text_and_steps_go_down() -> None:
    root = parse(dot.svg_text(classic()))
    width = float(root.get("width") or 0)
    tops = []
    for k in range(8):
        group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == f"step{k}")
        rect = group.find(f"{SVG}rect")
        assert rect is not None
        box = float(rect.get("width") or 0)
        longest = max(len("".join(t.itertext())) for t in group.iter(f"{SVG}text"))
        assert longest * dot.CHAR <= box and float(rect.get("x") or 0) + box <= width
        tops.append(float(rect.get("y") or 0))
    assert tops == sorted(tops) and len(set(tops)) == len(tops)


def test_inline_svg_has_no_namespace_url() -> None:
    assert "http" not in dot.svg_text(classic(), standalone=False)
    assert re.findall(r"http\S*", dot.svg_text(classic())) == ['http://www.w3.org/2000/svg"']


@pytest.mark.parametrize("render", [dot.dot_text, dot.svg_text])
def test_same_trace_same_bytes(render: object) -> None:
    path = WRITE_TRACKING
    assert callable(render)
    assert render(load.load(path)) == render(load.load(path))
