"""``kmeans.levels: auto`` and the degenerate-tree warning (docs/kmeans-labels.md)."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import yaml

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_tree, level_totals
from regionset.pipelines.kmeans.sizing import FULL_SCALE_PER_LEAF, MIN_PER_LEAF, auto_levels, tree_warnings
from regionset.pipelines.tools.status import collect_status, print_status
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, write_mixture

faiss.omp_set_num_threads(2)


@pytest.mark.parametrize(("n", "levels"), [(600, (12,)), (60_000, (16, 15)), (6_000_000, (50, 50)),
                                           (2_400_000_000, (1000, 1000))])
def test_auto_levels_are_sized_to_the_sample(n, levels):
    assert auto_levels(n) == levels
    leaves = int(np.prod(levels))
    assert MIN_PER_LEAF <= n / leaves <= FULL_SCALE_PER_LEAF * 1.01
    if len(levels) == 2:  # both levels meaningful: >= 10 clusters at the top, >= 10 children each
        assert levels[0] >= 10 and levels[1] >= 10
    assert level_totals(KMeansConfig(), n) == [int(np.prod(levels[:i + 1])) for i in range(len(levels))]


def test_auto_is_the_default_and_explicit_levels_win():
    assert KMeansConfig().levels == "auto"
    assert level_totals(KMeansConfig(levels=(1000, 100)), 600) == [1000, 100_000]
    with pytest.raises(ValueError, match="auto needs"):
        level_totals(KMeansConfig())


@pytest.mark.parametrize("n", [600, 60_000])
def test_auto_trees_fit_without_warnings(n):
    x, _ = gaussian_mixture(n, k=40, d=16, seed=0)
    tree, meta = fit_tree(x, KMeansConfig())
    assert meta["levels_auto"] and meta["levels"] == list(auto_levels(n)) and "auto_rule" in meta
    assert meta["sizes"][-1] >= meta["requested"][-1] // 2
    assert meta["median_leaf_regions"] >= 10
    assert meta["warnings"] == []


def test_degenerate_tree_warns_everywhere(tmp_path, capsys):
    write_mixture(tmp_path, 2, 300, d=16)  # 600 regions, the default tree of before: 100,000 leaves
    (tmp_path / "_state").mkdir()
    cfg = BuildConfig(output=str(tmp_path), kmeans=KMeansConfig(levels=(1000, 100), sample_size=1000))
    summary = run_fit_kmeans(tmp_path, cfg, [0, 1])
    assert len(summary["warnings"]) == 1 and "degenerate" in summary["warnings"][0]
    warning = summary["warnings"][0]
    for why in ("leaves of the 100,000 requested", "median", "no more clusters than the level above"):
        assert why in warning
    assert "WARNING" in capsys.readouterr().err
    meta = json.loads((tmp_path / "kmeans" / "kmeans.json").read_text())
    assert meta["warnings"] == [warning]
    lineage = yaml.safe_load((tmp_path / LINEAGE_FILE).read_text())
    assert lineage["warnings"] == [warning] and lineage["kmeans_tree"]["levels"] == [1000, 100]
    assert collect_status(tmp_path)["warnings"] == [warning]
    print_status(tmp_path)
    assert "WARNING" in capsys.readouterr().err
    again = run_fit_kmeans(tmp_path, cfg, [0, 1])  # a reused frozen tree keeps its warning
    assert again["reused"] and again["warnings"] == [warning]
    refit = run_fit_kmeans(tmp_path, BuildConfig(output=str(tmp_path), kmeans=KMeansConfig(sample_size=1000)), [0, 1])
    assert refit["warnings"] == []  # a well-sized refit clears the old tree's warning
    assert yaml.safe_load((tmp_path / LINEAGE_FILE).read_text())["warnings"] == []


def test_well_sized_tree_has_no_warning_and_empty_leaves_do(tmp_path):
    write_mixture(tmp_path, 2, 300, d=16)
    summary = run_fit_kmeans(tmp_path, BuildConfig(output=str(tmp_path), kmeans=KMeansConfig(sample_size=1000)), [0, 1])
    assert summary["warnings"] == []
    lineage = yaml.safe_load((tmp_path / LINEAGE_FILE).read_text())
    assert lineage["kmeans_tree"]["levels_auto"] and lineage["kmeans_tree"]["levels"] == [12]
    ok = {"sizes": [10, 100], "requested": [10, 100], "sample_rows": 5000, "median_leaf_regions": 50,
          "empty_leaves_in_sample": 0}
    assert tree_warnings(ok) == []
    assert "3 leaves with no sampled region" in tree_warnings({**ok, "empty_leaves_in_sample": 3})[0]
