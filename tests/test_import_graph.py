"""Imports flow schemas <- models <- stages <- pipelines <- dags; training <- schemas, models; every
package may import the leaf ``common`` (docs/architecture.md).

Walks every module's imports (AST, including imports inside functions) and fails on a wrong-way edge
or a cycle between top-level packages. ``regionset.pipelines.cli`` may import ``training`` lazily (the CLI is
the top of the graph).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["common", "schemas", "models", "stages", "pipelines", "training", "dags"]
ALLOWED = {
    "common": set(),
    "schemas": {"common"},
    "models": {"common", "schemas"},
    "stages": {"common", "schemas", "models"},
    "pipelines": {"common", "schemas", "models", "stages"},
    "training": {"common", "schemas", "models"},
    "dags": {"pipelines"},
}
EXCEPTIONS = {("pipelines/cli.py", "training")}


def _edges():
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text(), str(f))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != pkg:
                        yield pkg, top, str(f.relative_to(ROOT))


def test_no_wrong_way_edges():
    bad = [(src, dst, f) for src, dst, f in _edges() if dst not in ALLOWED[src] and (f, dst) not in EXCEPTIONS]
    assert not bad, f"wrong-way imports: {bad}"


def test_no_cycles():
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for src, dst, f in _edges():
        if (f, dst) not in EXCEPTIONS:
            graph[src].add(dst)
    seen, stack = set(), set()

    def visit(n):
        assert n not in stack, f"import cycle through {n}"
        if n in seen:
            return
        stack.add(n)
        for m in graph[n]:
            visit(m)
        stack.remove(n)
        seen.add(n)

    for p in PACKAGES:
        visit(p)
