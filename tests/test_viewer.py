"""The offline HTML viewer: self-contained, deterministic, and working in a real
headless browser (table and SVG render, arrow keys move the highlighted step in
both, a screenshot is taken).

The browser test skips when no Chromium is installed, except under CI (CI set),
where a missing browser fails it: .ci/run installs Debian's chromium.
"""

from __future__ import annotations

import json
import os
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from checker.cli import cli
from checker.traces import counterexample, load, viewer

from .browser import Browser, find_chromium
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


class Resources(HTMLParser):
    """Every attribute that could load something, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data", "poster"):
                self.links.append((tag, name, value or ""))


def test_the_page_is_self_contained() -> None:
    html = viewer.html_text(classic())
    assert "http" not in html  # not even an XML namespace: inline SVG needs none
    parsed = Resources()
    parsed.feed(html)
    assert parsed.links == []
    assert not {"link", "img", "iframe", "object", "embed", "base"} & set(parsed.tags)
    assert "@import" not in html and "fetch(" not in html and "XMLHttpRequest" not in html
    # the only url() references are the SVG's own arrow markers
    assert set(re.findall(r"url\(([^)]*)\)", html)) == {"#arrow", "#arrow-red"}
    assert parsed.tags.count("script") == 2 and parsed.tags.count("style") == 1


def test_the_page_has_the_header_table_graph_and_data() -> None:
    cx = classic()
    html = viewer.html_text(cx)
    assert (
        '<code id="reproduce">checker check --rule legacy --vcpus 2 --era v6.4-v6.12 --mmu shadow'
        "</code>"
    ) in html
    assert "once a write-protect for tracking has released mmu_lock" in html
    assert html.count('<tr id="row-') == 8 and '<svg id="trace-graph"' in html
    assert all(f'id="step{k}"' in html and f'id="detail-{k}"' in html for k in range(8))
    data = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', html)
    assert data is not None
    graph = json.loads(data.group(1))
    assert graph["graph"]["property"] == "write_tracking" and len(graph["nodes"]) == 8


def test_text_from_the_trace_is_escaped() -> None:
    cx = classic()
    tricky = counterexample.Counterexample(
        cx.trace,
        cx.provenance.__class__(
            cx.provenance.expression,
            "checker check --expr '</script><b>x</b>'",
            "0.1.0",
            "z3",
        ),
        "a&b<c>.json",
    )
    html = viewer.html_text(tricky)
    assert "</script><b>" not in html and "<b>x</b>" not in html
    assert "a&amp;b&lt;c&gt;.json" in html
    assert "&&" not in html.split("<script>")[0].replace("&amp;&amp;", "")


def test_same_trace_same_bytes() -> None:
    assert viewer.html_text(classic()) == viewer.html_text(classic())


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def current(browser: Browser) -> dict[str, object]:
    """Which step is highlighted in the table, the graph and the details."""
    return browser.evaluate(
        """({
        rows: Array.from(document.querySelectorAll('#trace tbody tr.current'))
          .map(r => Number(r.dataset.step)),
        nodes: Array.from(document.querySelectorAll('#trace-graph g.node.current'))
          .map(g => g.id),
        edges: Array.from(document.querySelectorAll('#trace-graph g.edge.current'))
          .map(g => g.id),
        details: Array.from(document.querySelectorAll('.detail:not([hidden])'))
          .map(d => d.id),
        nodeStroke: getComputedStyle(
          document.querySelector('#trace-graph g.node.current rect')).stroke,
        rowBackground: getComputedStyle(
          document.querySelector('#trace tbody tr.current td')).backgroundColor,
        otherBackground: getComputedStyle(
          document.querySelector('#trace tbody tr:not(.current) td')).backgroundColor,
      })"""
    )


def test_the_viewer_in_a_headless_browser(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium); CI requires it")

    # as a person would: export the committed counterexample with the CLI
    page = tmp_path / "write_tracking.html"
    exported = CliRunner().invoke(cli, ["export", str(WRITE_TRACKING), "-o", str(page)])
    assert exported.exit_code == 0, exported.output
    depth = load.load(WRITE_TRACKING).trace.depth

    with Browser(chromium, tmp_path / "era") as browser:
        browser.open(page.as_uri())

        # the table and the SVG are there and have a size
        rendered = browser.evaluate(
            """({
            rows: document.querySelectorAll('#trace tbody tr').length,
            table: document.getElementById('trace').getBoundingClientRect().height,
            nodes: document.querySelectorAll('#trace-graph g.node').length,
            box: document.querySelector('#trace-graph #step0 rect').getBBox().height,
            svg: document.getElementById('trace-graph').getBoundingClientRect().width,
            title: document.title,
          })"""
        )
        assert rendered["rows"] == depth + 1 and rendered["nodes"] == depth + 1
        assert rendered["table"] > 50 and rendered["svg"] > 100 and rendered["box"] > 20
        assert rendered["title"] == "legacy: write_tracking violated in 5 steps"

        start = current(browser)
        assert (start["rows"], start["nodes"], start["edges"]) == ([0], ["step0"], [])
        assert start["details"] == ["detail-0"]

        browser.press("ArrowRight")
        now = current(browser)
        assert (now["rows"], now["nodes"], now["edges"]) == ([1], ["step1"], ["edge1"])
        assert now["details"] == ["detail-1"]
        # highlighted for the eye too, not just by class name
        assert now["nodeStroke"] == "rgb(37, 99, 235)"
        assert now["rowBackground"] != now["otherBackground"]

        browser.press("ArrowDown")
        assert current(browser)["rows"] == [2] and current(browser)["nodes"] == ["step2"]
        browser.press("ArrowLeft")
        assert current(browser)["rows"] == [1] and current(browser)["nodes"] == ["step1"]
        browser.press("End")
        last = current(browser)
        assert last["rows"] == [depth] and last["nodes"] == [f"step{depth}"]
        row_class = browser.evaluate(f"document.getElementById('row-{depth}').className")
        assert row_class == "violation current"
        browser.press("ArrowRight")  # past the end: stays on the last step
        assert current(browser)["rows"] == [depth]
        browser.press("ArrowUp")
        browser.press("ArrowUp")
        assert current(browser)["nodes"] == [f"step{depth - 2}"]

        shot = tmp_path / "viewer.png"
        browser.screenshot(shot)
        assert png_size(shot) == (1600, 1100) and shot.stat().st_size > 20_000

        # nothing but the file itself was loaded, and the script ran cleanly
        assert browser.requests() == [page.as_uri()]
        assert browser.errors() == []
