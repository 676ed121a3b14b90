"""The package's shape: no import cycles between featkit modules (at module level or inside
functions), and the layers point one way: nothing imports the CLI, and the report renders
results without importing the code that computes them."""

from __future__ import annotations

import ast
from pathlib import Path

import featkit

ROOT = Path(featkit.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _import_graph() -> dict[str, set[str]]:
    """Module -> featkit modules it imports, anywhere in its code except under
    ``if TYPE_CHECKING:`` (annotations only, never run)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        pending = list(ast.parse(path.read_text()).body)
        while pending:
            node = pending.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                pending.extend(node.orelse)
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                found = resolve(target) if target.startswith("featkit") else None
                if found is not None and found != module:
                    graph[module].add(found)
            pending.extend(ast.iter_child_nodes(node))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_imports():
    graph = _import_graph()
    # engine.extraction imports its Dask runner inside extract(): a lazy import counts.
    assert "featkit.engine.dask" in graph["featkit.engine.extraction"]


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_between_featkit_modules():
    assert _cycles(_import_graph()) == []


def test_the_cli_is_the_top_and_the_report_only_renders():
    graph = _import_graph()
    for module, imported in graph.items():
        if not module.startswith("featkit.cli"):
            assert not any(m.startswith("featkit.cli") for m in imported), module
        if module.startswith("featkit.report"):
            assert not any(m.startswith("featkit.evaluate") for m in imported), module
