"""The layout shows the pipeline: imports run one way and no module imports itself back.

Every `import` in the package counts, those inside functions too. Layers, lowest first:
language (the spec language) <- compiler and data <- train and views <- program <- cli. A module
may import its own layer and those below; `nets` (installed as lossgraph.nets) imports nothing of
lossgraph. The package's `__init__` is the public API and may reach any layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lossgraph"
LAYERS = {"language": 0, "compiler": 1, "data": 1, "train": 2, "views": 2, "program": 3, "cli": 4, "__main__": 4}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    for path in sorted((ROOT / "nets").rglob("*.py")):
        parts = ["lossgraph", "nets", *path.relative_to(ROOT / "nets").with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> nx.DiGraph:
    found = modules()
    dag = nx.DiGraph()
    for name, path in found.items():
        dag.add_node(name)
        for target in imports(path, name, set(found)):
            dag.add_edge(name, target)
    return dag


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles():
    dag = graph()
    # a package's __init__ re-exporting its modules is not a cycle of the modules themselves
    edges = [(a, b) for a, b in dag.edges if not b.startswith(a + ".")]
    cycles = list(nx.simple_cycles(nx.DiGraph(edges)))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_imports_run_one_way():
    wrong = []
    for source, target in graph().edges:
        if source.startswith("lossgraph.nets"):
            if not target.startswith("lossgraph.nets"):
                wrong.append((source, target))
            continue
        low, high = layer(source), layer(target)
        if source == "lossgraph" or low is None or high is None:
            continue
        if high > low:
            wrong.append((source, target))
    assert not wrong, "imports against the layers (language <- compiler, data <- train, views <- program <- cli): " + ", ".join(f"{a} -> {b}" for a, b in wrong)


def test_modules_are_small_or_say_why():
    long = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any("stays whole" in line for line in lines[:30]):
            long.append(f"{name} ({len(lines)} lines)")
    assert not long, f"modules over {MAX_LINES} lines without a note saying why they stay whole: {long}"
