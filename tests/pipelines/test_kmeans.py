"""Hierarchical k-means: recovery of a Gaussian mixture vs flat FAISS, allocation, degenerate cases."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from regionset.models.kmeans_index import nearest_centroids
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_tree, level_totals
from regionset.pipelines.kmeans.params import FitParams, FitResult
from regionset.pipelines.kmeans.tree import allocate, fit_hierarchy, refine
from tests.label_data import gaussian_mixture

faiss.omp_set_num_threads(2)


def purity(truth: np.ndarray, pred: np.ndarray) -> float:
    """Share of points whose cluster's majority true label is their own."""
    m = np.zeros((pred.max() + 1, truth.max() + 1))
    np.add.at(m, (pred, truth), 1)
    return float(m.max(1).sum() / len(truth))


def nmi(truth: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean of the entropies)."""
    m = np.zeros((pred.max() + 1, truth.max() + 1))
    np.add.at(m, (pred, truth), 1)
    p = m / m.sum()
    pa_, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa_, pb)[nz])).sum()

    def h(q: np.ndarray) -> float:
        return float(-(q[q > 0] * np.log(q[q > 0])).sum())

    return float(2 * mi / (h(pa_) + h(pb)))


def test_gaussian_mixture_recovered_like_flat_kmeans():
    x, truth = gaussian_mixture(10_000, k=50, d=64, spread=1.0, noise=0.3, seed=0)
    res = fit_hierarchy(x, [5, 50], FitParams(spherical=False, seed=1, niter=20))
    assert [len(c) for c in res.centroids] == [5, 50]
    pred, dist = nearest_centroids(x, res.centroids[-1], "numpy")
    km = faiss.Kmeans(64, 50, niter=20, seed=1)
    km.train(x)
    flat, flat_dist = nearest_centroids(x, km.centroids, "numpy")
    # Thresholds: both clusterings find most of the 50 true clusters; hierarchical is no worse.
    assert nmi(truth, pred) > 0.9 and purity(truth, pred) > 0.75
    assert nmi(truth, pred) >= nmi(truth, flat) - 0.02
    assert purity(truth, pred) >= purity(truth, flat) - 0.03
    assert dist.mean() <= 1.05 * flat_dist.mean()


def test_allocate_is_proportional_capped_and_exact():
    k = allocate(np.array([100.0, 10, 1, 0]), 20, np.array([50, 50, 50, 1]))
    assert k.sum() == 20 and (k >= 1).all()
    assert k[0] > k[1] >= k[2]
    k = allocate(np.array([1.0, 1, 1]), 100, np.array([5, 7, 50]))
    assert k.tolist() == [5, 7, 50]  # more wanted than distinct points: every parent full
    k = allocate(np.array([1.0, 1000]), 2, np.array([10, 10]))
    assert k.tolist() == [1, 1]  # every parent keeps at least one child


def test_level_totals():
    assert level_totals(KMeansConfig(levels=(10, 5))) == [10, 50]
    assert level_totals(KMeansConfig(levels=(10, 40), level_sizes="totals")) == [10, 40]
    with pytest.raises(ValueError, match="kmeans.levels"):
        level_totals(KMeansConfig(levels=()))


def test_fewer_points_than_clusters_gives_one_leaf_per_point():
    x, _ = gaussian_mixture(12, k=3, d=8, seed=2)
    res = fit_hierarchy(x, [4, 20], FitParams(spherical=False))
    assert len(res.centroids[-1]) == 12
    assert res.stats["clusters_short"] == 8
    pred, dist = nearest_centroids(x, res.centroids[-1], "numpy")
    assert len(set(pred.tolist())) == 12 and np.allclose(dist, 0, atol=1e-4)


def test_duplicates_count_once_and_no_empty_leaves():
    base, _ = gaussian_mixture(3, k=3, d=8, seed=3)
    x = np.repeat(base, 100, axis=0)
    tree, meta = fit_tree(x, KMeansConfig(levels=(2, 4), spherical=False, sample_size=1000))
    assert meta["sizes"][-1] == 3  # three distinct vectors can fill three leaves, not eight
    assert meta["empty_leaves_in_sample"] == 0
    paths, _ = tree.assign(x)
    assert len(set(paths[:, -1].tolist())) == 3


def test_spherical_centroids_are_unit_norm_and_fit_is_deterministic():
    x, _ = gaussian_mixture(3000, k=20, d=32, seed=4)
    a, meta = fit_tree(x, KMeansConfig(levels=(4, 5), seed=7))
    b, _ = fit_tree(x, KMeansConfig(levels=(4, 5), seed=7))
    for ca, cb in zip(a.centroids, b.centroids):
        assert np.array_equal(ca, cb)
        assert np.allclose(np.linalg.norm(ca, axis=1), 1, atol=1e-4)
    assert meta["spherical"] and meta["faiss_version"] == faiss.__version__
    paths, dist = a.assign(x)
    assert (dist <= 4.0 + 1e-5).all()  # 2 - 2cos between unit vectors
    # the path is the leaf's ancestry
    assert (a.parents[1][paths[:, 1]] == paths[:, 0]).all()


@pytest.mark.parametrize("allocate_by", ["size", "sse"])
def test_three_levels_paths_are_consistent(allocate_by):
    x, _ = gaussian_mixture(2000, k=12, d=16, seed=5)
    tree, meta = fit_tree(x, KMeansConfig(levels=(2, 3, 2), allocate_by=allocate_by, spherical=False))
    assert meta["sizes"] == [2, 6, 12]
    paths, _ = tree.assign(x)
    for level in (1, 2):
        assert (tree.parents[level][paths[:, level]] == paths[:, level - 1]).all()
    # children are shared by parent size: a bigger parent never gets fewer children at level 1
    sizes = np.bincount(nearest_centroids(x, tree.centroids[0], "numpy")[0], minlength=2)
    kids = np.bincount(tree.parents[1], minlength=2)
    if allocate_by == "size" and sizes[0] != sizes[1]:
        assert kids[np.argmax(sizes)] >= kids[np.argmin(sizes)]


def _zipf_mixture(n: int, centres: int, d: int, seed: int) -> np.ndarray:
    """Clustered data with Zipf-like cluster sizes and spreads (like bench/kmeans.py)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)) * 2.0
    w = 1.0 / np.arange(1, centres + 1) ** 0.8
    lab = rng.choice(centres, n, p=w / w.sum())
    return (c[lab] + rng.standard_normal((n, d)) * rng.uniform(0.3, 1.5, centres)[lab, None]).astype(np.float32)


def test_global_refinement_lowers_inertia_to_flat_level():
    x = _zipf_mixture(20_000, 128, 32, seed=6)
    base = fit_hierarchy(x, [16, 512], FitParams(spherical=False, refine_iters=0))
    ref = fit_hierarchy(x, [16, 512], FitParams(spherical=False, refine_iters=2))
    _, d0 = nearest_centroids(x, base.centroids[-1], "numpy")
    _, d2 = nearest_centroids(x, ref.centroids[-1], "numpy")
    km = faiss.Kmeans(32, 512, niter=20, seed=0)
    km.train(x)
    _, df = nearest_centroids(x, km.centroids, "numpy")
    print(f"inertia: tree {d0.mean():.4f}, refined {d2.mean():.4f}, flat {df.mean():.4f}")
    assert d2.mean() < d0.mean() and d2.mean() <= 1.02 * df.mean()
    assert [len(c) for c in ref.centroids] == [16, 512]
    assert ref.parents[1].min() >= 0 and ref.parents[1].max() < 16


def _hand_tree() -> tuple[np.ndarray, FitResult]:
    """Points around (0,0) and (10,0); leaves 0,1 under parent 0, leaves 2,3 under parent 1; leaf 3
    sits far from every point."""
    x = np.array([[-1, 0], [1, 0], [0, 1], [9, 0], [11, 0], [10, 2]], np.float32)
    res = FitResult(centroids=[np.array([[0, 0], [10, 0]], np.float32),
                               np.array([[-1, 0], [1, 0.5], [10, 0], [50, 50]], np.float32)],
                    parents=[np.array([-1, -1], np.int32), np.array([0, 0, 1, 1], np.int32)])
    return x, res


def test_refine_moves_leaves_to_means_and_upper_centroids_to_subtree_means():
    x, res = _hand_tree()
    refine(x, res, FitParams(spherical=False, refine_iters=1))
    leaves = res.centroids[1]
    assert np.allclose(leaves[0], [-1, 0]) and np.allclose(leaves[1], [0.5, 0.5])
    # leaf 3 got no point: re-seeded beside the largest leaf (2, three points) and adopted by its parent
    assert res.stats["refine_reseeded"] == 1 and res.parents[1].tolist() == [0, 0, 1, 1]
    assert np.allclose(leaves[2], leaves[3], atol=0.1) and not np.array_equal(leaves[2], leaves[3])
    assert np.allclose(leaves[2] + leaves[3], 2 * np.array([10, 2 / 3]), atol=1e-4)
    # upper level: mean of the points under each parent in that iteration
    assert np.allclose(res.centroids[0], [[0, 1 / 3], [10, 2 / 3]], atol=1e-5)


def test_reseeded_leaf_takes_the_parent_of_the_leaf_it_splits():
    x, res = _hand_tree()
    res.parents[1] = np.array([0, 0, 1, 0], np.int32)  # the far leaf now hangs under parent 0
    refine(x, res, FitParams(spherical=False, refine_iters=2))
    assert res.parents[1].tolist() == [0, 0, 1, 1]
    leaf, _ = nearest_centroids(x, res.centroids[1], "numpy")
    assert len(set(leaf.tolist())) == 4  # after a second iteration the split cell is shared


def test_refinement_off_leaves_the_tree_as_fitted():
    x, res = _hand_tree()
    before = [c.copy() for c in res.centroids]
    refine(x, res, FitParams(spherical=False, refine_iters=0))
    assert all(np.array_equal(a, b) for a, b in zip(before, res.centroids))


def test_refinement_spherical_keeps_unit_norm_at_every_level():
    x, _ = gaussian_mixture(3000, k=20, d=32, seed=8)
    tree, meta = fit_tree(x, KMeansConfig(levels=(4, 8), refine_iters=2))
    assert meta["refine_iters"] == 2
    for c in tree.centroids:
        assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-4)


def test_negative_refine_iters_is_refused_naming_the_key():
    x, _ = gaussian_mixture(100, k=4, d=8, seed=9)
    with pytest.raises(ValueError, match="kmeans.refine_iters"):
        fit_tree(x, KMeansConfig(levels=(2, 2), refine_iters=-1))
