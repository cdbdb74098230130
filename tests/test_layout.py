"""The package's module picture: no import cycle (lazy imports inside functions included), the
metric functions below everything that reads files, and every path built by recsae.paths."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "recsae"


def module_imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: recsae modules it imports anywhere in its file}."""
    files = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        name = ".".join(("recsae", *parts)).removesuffix(".__init__")
        files[name] = path
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[name] |= {t for t in targets if t in files and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    assert cycles(module_imports()) == []


def test_metrics_are_functions_below_the_stages():
    """recsae.metrics imports nothing of the package but itself."""
    for name, targets in module_imports().items():
        if name.startswith("recsae.metrics"):
            assert all(t.startswith("recsae.metrics") for t in targets), (name, targets)


def test_only_the_cli_and_the_stages_import_the_stages():
    for name, targets in module_imports().items():
        if any(t.startswith("recsae.stages") for t in targets):
            assert name.startswith(("recsae.stages", "recsae.cli")), name
