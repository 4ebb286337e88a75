"""The package's layout is its pipeline, and the import graph must say so.

Layers, lowest first: the shared base (errors, files, limits, text, process, interrupt,
schemas, verdict), then ``model`` (the declaration), ``rules`` (C text to a
formula over the model's SPTE fields), ``engines`` (the model's interpretations and
the checks), ``traces`` (counterexample files and their views), ``report`` (the
gate and its outputs), ``cli``, and the console script that runs it. A module
may import its own layer or a lower one, never a higher one, and no import cycle
is allowed anywhere, including imports inside functions and under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "checker"

LAYERS = ("base", "model", "rules", "engines", "traces", "report", "cli", "entry")

#: the process's entry points, above the CLI they run
ENTRY = {"checker.console", "checker.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """``checker.engines.bmc`` is in ``engines``; ``checker.files`` in the base."""
    if module in ENTRY:
        return "entry"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "base"


def imports() -> nx.DiGraph:
    """Every module of the package, with an edge to each checker module it imports."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    # a relative import: resolve it against the importing package
                    package = name.split(".")
                    if path.name != "__init__.py":
                        package = package[:-1]
                    base = package[: len(package) - node.level + 1]
                    module = ".".join([*base, module] if module else base)
                if module == "checker":
                    targets = [f"checker.{a.name}" for a in node.names]
                elif module.startswith("checker."):
                    targets = [module]
                    targets += [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("checker.")]
            for target in targets:
                if target in modules and target != name:
                    graph.add_edge(name, target)
    return graph


def test_the_graph_sees_the_package() -> None:
    graph = imports()
    assert {"checker.model", "checker.engines.bmc", "checker.cli.check"} <= set(graph)
    assert graph.has_edge("checker.engines.bmc", "checker.engines.encode")


def test_no_module_imports_a_higher_layer() -> None:
    graph = imports()
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [
        f"{a} ({layer(a)}) imports {b} ({layer(b)})"
        for a, b in graph.edges
        if rank[layer(b)] > rank[layer(a)]
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = imports()
    cycles = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_a_relative_import_counts(tmp_path: Path) -> None:
    """The parser resolves ``from ..traces import view`` inside engines/ to an
    upward import (a copy of the package with one planted)."""
    import shutil

    global PACKAGE
    copy = tmp_path / "checker"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "_specs"))
    bmc = copy / "engines" / "bmc.py"
    bmc.write_text(bmc.read_text() + "\nfrom ..traces import view  # noqa\n")
    saved, PACKAGE = PACKAGE, copy
    try:
        graph = imports()
    finally:
        PACKAGE = saved
    assert graph.has_edge("checker.engines.bmc", "checker.traces.view")


def test_the_check_would_catch_an_upward_import(tmp_path: Path) -> None:
    """The layer test is not vacuous: an engine importing a view is seen."""
    graph = imports()
    graph.add_edge("checker.engines.bmc", "checker.traces.view")
    rank = {name: i for i, name in enumerate(LAYERS)}
    assert any(rank[layer(b)] > rank[layer(a)] for a, b in graph.edges)
    graph.add_edge("checker.traces.view", "checker.engines.bmc")
    assert any(len(c) > 1 for c in nx.strongly_connected_components(graph))
