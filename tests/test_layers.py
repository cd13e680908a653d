"""The import structure: layers import downward only (benchmark -> attacks -> victims), and no two modules of
the project import each other, not even through imports hidden inside functions or `if TYPE_CHECKING:`; inside
benchmark/, each room imports only the rooms below it (benchmark/__init__.py)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("benchmark", "attacks", "victims")  # each may import only those after it
PACKAGES = tuple(p for p in ("benchmark", "defenses", "attacks", "victims") if (REPO / p).is_dir())
# benchmark/'s rooms, top to bottom (rank): a module imports its own room's or a lower room's (the model: the
# modules at benchmark/ and data/); dispatch/, parity/ and pilots/ share a rank and do not import each other
ROOMS = {"cli": 0, "dispatch": 1, "parity": 1, "pilots": 1, "report": 2, "jobs": 3}
MODEL = 4


def imports_in(source: str, package: str, known: set[str] | dict) -> set[str]:
    """The modules of `known` that `source` (a module of `package`) imports anywhere: at the top, in functions,
    under `if TYPE_CHECKING:`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found |= {c for c in [base, *(f"{base}.{a.name}" for a in node.names)] if c in known}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    return found


def import_graph(packages: tuple[str, ...] = LAYERS) -> dict[str, set[str]]:
    """module -> the modules of this project it imports anywhere in its file (functions included)."""
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for layer in packages for p in (REPO / layer).rglob("*.py") if "scripts" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imports_in(path.read_text(), package, files) - {name}
    return graph


def room(module: str) -> str:
    """`benchmark.dispatch.plan` -> dispatch; a module of the model (`benchmark.specs`, `benchmark.data.cache`)
    -> model."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "model"


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


def test_no_import_cycle_anywhere_in_the_project():
    """Among all the project's packages, imports under `if TYPE_CHECKING:` included (a type-only import is still
    a circle for a reader and for tools)."""
    assert cycles(import_graph(PACKAGES)) == []
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .registry import Registry\n"
    assert imports_in(typed, "victims", {"victims.registry"}) == {"victims.registry"}  # the walk sees them


def test_benchmark_rooms_import_downward_only():
    rank = {**ROOMS, "model": MODEL}
    upward = [(a, b) for a, targets in import_graph().items() if a.startswith("benchmark.") for b in targets
              if b.startswith("benchmark.") and room(a) != room(b) and rank[room(b)] <= rank[room(a)]]
    assert upward == []
    assert {room(m) for m in import_graph() if m.startswith("benchmark.")} == {*ROOMS, "model"}  # every room seen


def unresolved_imports() -> list[str]:
    """`file:line module` for every import of a project module (relative, or absolute from one of the project's
    packages) that names no module or package of the project: a path a move left behind, even in a function."""
    py = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")] + list((REPO / "tests").rglob("*.py"))
    known = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in py}
    out = []
    for path in py:
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        package = name.removesuffix(".__init__") if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                wanted = [".".join(parts + ([node.module] if node.module else []))]
            elif isinstance(node, ast.ImportFrom):
                wanted = [node.module or ""]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            out += [f"{path.relative_to(REPO)}:{node.lineno} {w}" for w in wanted
                    if w.split(".")[0] in PACKAGES and w not in known]
    return out


def test_every_import_of_a_project_module_names_one_that_exists():
    assert unresolved_imports() == []


def test_defenses_import_only_victims():
    """DESIGN.md: defenses/ may import victims/; it never imports attacks/ or benchmark/, nor they it but
    benchmark/ (attacks and defenses are siblings above victims)."""
    graph = import_graph(PACKAGES)
    wrong = [(a, b) for a, targets in graph.items() for b in targets
             if (a.startswith("defenses") and b.split(".")[0] in ("attacks", "benchmark"))
             or (a.split(".")[0] in ("attacks", "victims") and b.startswith("defenses"))]
    assert wrong == []
    assert any(b.startswith("defenses") for a, ts in graph.items() if a.startswith("benchmark") for b in ts)
