"""Hierarchical k-means: recovery of a Gaussian mixture vs flat FAISS, allocation, degenerate cases."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from models.kmeans_index import nearest_centroids
from pipelines.hierarchical_kmeans import FitParams, allocate, fit_hierarchy
from pipelines.kmeans import KMeansConfig, fit_tree, level_totals
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
