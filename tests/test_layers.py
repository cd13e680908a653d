"""The import structure: layers import downward only (benchmark -> attacks -> victims), and no two modules of
benchmark/ import each other, not even through imports hidden inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("benchmark", "attacks", "victims")  # each may import only those after it


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of this project it imports anywhere in its file (functions included)."""
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for layer in LAYERS for p in (REPO / layer).rglob("*.py") if "scripts" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                found |= {c for c in [base, *(f"{base}.{a.name}" for a in node.names)] if c in files}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in files}
        graph[name] = found - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_layers_import_downward_only():
    upward = [(a, b) for a, targets in import_graph().items() for b in targets
              if LAYERS.index(b.split(".")[0]) < LAYERS.index(a.split(".")[0])]
    assert upward == []


def test_no_import_cycle_among_benchmark_modules():
    graph = {m: {t for t in ts if t.startswith("benchmark.")} for m, ts in import_graph().items()
             if m.startswith("benchmark.")}
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the check finds one
