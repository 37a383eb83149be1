"""The import ladder inside ``pipelines/`` (docs/architecture.md "Import rules"), checked on the AST of
every module (the rules between top-level packages: tests/test_import_graph.py).

Inside ``pipelines/``, one ladder: ``core <- executors <- kmeans, dedup <- config, steps, definition,
preflight, build <- tools <- cli, tasks``: a module imports its own rung and lower rungs only, and
no two modules of ``pipelines/`` import each other, directly or round a loop. Every import counts:
at module level, inside functions and under ``TYPE_CHECKING``, so a deferred import cannot hide a
cycle. Package ``__init__`` files re-export nothing.

The checker functions take the tree's root, so the tests at the bottom plant a cycle and an upward
import in a small fake tree and show that the checker fails on them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.import_cycles import find_cycle

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "regionset."

# The ladder inside pipelines/, lowest rung first. A module's rung: its sub-package, or for a
# top-level module its name.
LADDER = [
    {"core"},
    {"executors"},
    {"kmeans", "dedup"},
    {"config", "steps", "definition", "preflight", "build"},
    {"tools"},
    {"cli", "tasks"},
]


def _imports(path: Path) -> list[str]:
    """Every absolute module name ``path`` imports, wherever the import statement is."""
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]  # ``from pkg import module``
    return names


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name (``regionset.pipelines.core.shards``) -> file, for every module of ``package``
    (the folder ``root/package``: installed as ``regionset.package``)."""
    mods = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[PREFIX + ".".join(parts)] = f
    return mods


def module_graph(root: Path, package: str = "pipelines") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (a package import counts as its ``__init__``)."""
    mods = _modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, f in mods.items():
        for name in _imports(f):
            if name in mods and name != mod:
                graph[mod].add(name)
    return graph


def rung(module: str) -> int:
    """The ladder rung of a ``pipelines`` module (``pipelines`` itself: the bottom)."""
    parts = module.removeprefix(PREFIX).split(".")
    if len(parts) == 1:
        return 0
    for i, names in enumerate(LADDER):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module}: not on the ladder of tests/test_import_graph.py (add its rung)")


def upward_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower rung to a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if rung(b) > rung(a))


def reexports(root: Path, package: str = "pipelines") -> list[str]:
    """``__init__`` files of ``package`` that import anything (a docstring is all they may hold)."""
    bad = []
    for f in sorted((root / package).rglob("__init__.py")):
        tree = ast.parse(f.read_text())
        if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
            bad.append(str(f.relative_to(root)))
    return bad


def test_pipelines_no_module_cycles():
    cycle = find_cycle(module_graph(ROOT))
    assert cycle is None, f"import cycle in pipelines/: {' -> '.join(cycle)}"


def test_pipelines_ladder():
    up = upward_edges(module_graph(ROOT))
    assert not up, f"imports up the pipelines/ ladder (docs/architecture.md): {up}"


def test_pipelines_init_files_reexport_nothing():
    assert not reexports(ROOT), "package __init__ files that import (re-export) something"


def _fake_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


CLEAN = {
    "pipelines/__init__.py": "",
    "pipelines/core/__init__.py": '"""The engine."""\n',
    "pipelines/core/shards.py": "import json\n",
    "pipelines/core/catalog.py": "from regionset.pipelines.core.shards import x\n",
    "pipelines/kmeans/__init__.py": "",
    "pipelines/kmeans/fit.py": "from regionset.pipelines.core import catalog\n",
    "pipelines/build.py": "def f():\n    from regionset.pipelines.kmeans.fit import fit\n",
}


def test_checker_passes_a_clean_tree(tmp_path):
    graph = module_graph(_fake_tree(tmp_path, CLEAN))
    assert graph["regionset.pipelines.kmeans.fit"] == {"regionset.pipelines.core", "regionset.pipelines.core.catalog"}
    assert find_cycle(graph) is None and not upward_edges(graph) and not reexports(tmp_path)


@pytest.mark.parametrize("where", ["top", "function", "type_checking"])
def test_checker_fails_on_a_planted_cycle(tmp_path, where):
    back = {
        "top": "from regionset.pipelines.core.catalog import y\n",
        "function": "def g():\n    from regionset.pipelines.core.catalog import y\n",
        "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from regionset.pipelines.core.catalog import y\n",
    }[where]
    graph = module_graph(_fake_tree(tmp_path, {**CLEAN, "pipelines/core/shards.py": back}))
    assert find_cycle(graph) == ["regionset.pipelines.core.catalog", "regionset.pipelines.core.shards", "regionset.pipelines.core.catalog"]


def test_checker_fails_on_a_planted_upward_import(tmp_path):
    files = {**CLEAN, "pipelines/core/catalog.py": "def g():\n    from regionset.pipelines.build import f\n"}
    assert upward_edges(module_graph(_fake_tree(tmp_path, files))) == [("regionset.pipelines.core.catalog", "regionset.pipelines.build")]


def test_checker_fails_on_a_reexport(tmp_path):
    files = {**CLEAN, "pipelines/kmeans/__init__.py": "from regionset.pipelines.kmeans.fit import fit\n"}
    assert reexports(_fake_tree(tmp_path, files)) == ["pipelines/kmeans/__init__.py"]
