"""Imports flow schemas <- models <- stages <- pipelines <- dags; training <- schemas, models; every
package may import the leaf ``common`` (docs/architecture.md).

Walks every module's imports (AST, including imports inside functions) and fails on a wrong-way edge
or a cycle between the packages. Everything imports as ``regionset.*``: ``regionset.pipelines.x`` and
``from regionset import pipelines`` count as package ``pipelines`` (the folder pipelines/); an import of
the old top-level name (``import X``, X a folder) is a defect of its own. ``regionset.pipelines.cli`` may
import ``training`` lazily (the CLI is the top of the graph).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.import_cycles import find_cycle

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


def _imported(node: ast.AST) -> list[str]:
    """The packages of PACKAGES an import statement reaches (``regionset.`` stripped), or old bare names
    prefixed with ``!``."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "regionset" else [node.module]
    else:
        return []
    out = []
    for name in names:
        parts = name.split(".")
        if parts[0] == "regionset" and len(parts) > 1 and parts[1] in PACKAGES:
            out.append(parts[1])
        elif parts[0] in PACKAGES and parts[0] != "dags":
            out.append("!" + parts[0])
    return out


def _edges(root: Path = ROOT):
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text(), str(f))
            for node in ast.walk(tree):
                for top in _imported(node):
                    if top != pkg:
                        yield pkg, top, str(f.relative_to(root))


def _wrong_way(root: Path = ROOT) -> list[tuple[str, str, str]]:
    return [(src, dst, f) for src, dst, f in _edges(root)
            if not dst.startswith("!") and dst not in ALLOWED[src] and (f, dst) not in EXCEPTIONS]


def _cycle(root: Path = ROOT) -> str | None:
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for src, dst, f in _edges(root):
        if not dst.startswith("!") and (f, dst) not in EXCEPTIONS:
            graph[src].add(dst)
    found = find_cycle(graph)
    return " -> ".join(found) if found else None


def test_no_wrong_way_edges():
    edges = {(src, dst) for src, dst, _ in _edges()}
    assert {("pipelines", "stages"), ("stages", "models"), ("dags", "pipelines")} <= edges  # the walk sees them
    bad = _wrong_way()
    assert not bad, f"wrong-way imports: {bad}"


def test_no_cycles():
    cycle = _cycle()
    assert cycle is None, f"import cycle: {cycle}"


def test_no_imports_of_the_old_top_level_names():
    old = [(src, dst[1:], f) for src, dst, f in _edges() if dst.startswith("!")]
    for folder in ("tests", "bench"):  # not in the graph, but an old-style import there is as wrong
        for f in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                old += [(folder, top[1:], str(f.relative_to(ROOT))) for top in _imported(node) if top[0] == "!"]
    assert not old, f"import regionset.X, not X: {old}"


def test_the_checker_sees_a_planted_wrong_way_edge_and_cycle(tmp_path):
    """The walk really sees ``regionset.*`` imports: a fake tree with wrong-way edges in both spellings."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "models" / "fine.py").write_text("from regionset.schemas import tables\nimport regionset.common.x\n")
    assert _wrong_way(tmp_path) == [] and _cycle(tmp_path) is None
    (tmp_path / "stages" / "bad.py").write_text("def f():\n    from regionset.pipelines.build import build\n")
    (tmp_path / "schemas" / "bad.py").write_text("from regionset import models\n")
    old = "pipelines"  # spelt so that the namespace codemod leaves this old-style import alone
    (tmp_path / "common" / "old.py").write_text(f"import {old}.cli\n")
    assert _wrong_way(tmp_path) == [("schemas", "models", "schemas/bad.py"), ("stages", "pipelines", "stages/bad.py")]
    assert _cycle(tmp_path) == "schemas -> models -> schemas"
    assert [(s, d) for s, d, _ in _edges(tmp_path) if d.startswith("!")] == [("common", "!pipelines")]
