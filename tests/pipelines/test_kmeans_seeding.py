"""k-means++ seeding: deterministic, shard-order independent, and a tiny cluster gets its leaf."""

from __future__ import annotations

from dataclasses import replace

import faiss
import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree, nearest_centroids
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.params import FitParams
from regionset.pipelines.kmeans.seeding import kmeanspp, level_seeds
from regionset.pipelines.kmeans.tree import fit_hierarchy
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, write_mixture

faiss.omp_set_num_threads(2)


def tiny_and_huge(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """5,000 points around one centre, 3 × 300 around three others, 20 far off
    around a fifth (d = 8): the tiny cluster weighs more in the k-means objective than a split of the huge one."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:5] * [[12.0], [12.0], [12.0], [12.0], [100.0]]
    sizes = [5000, 300, 300, 300, 20]
    lab = np.repeat(np.arange(5), sizes)
    x = (centres[lab] + rng.standard_normal((len(lab), 8))).astype(np.float32)
    return x, lab


def _tiny_has_own_leaf(x: np.ndarray, lab: np.ndarray, leaves: np.ndarray) -> bool:
    ids, _ = nearest_centroids(x, leaves, "numpy")
    tiny = set(ids[lab == 4].tolist())
    return len(tiny) == 1 and not np.isin(ids[lab != 4], list(tiny)).any()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tiny_cluster_gets_its_own_leaf(seed):
    x, lab = tiny_and_huge(seed)
    res = fit_hierarchy(x, [2, 5], FitParams(seed=seed, spherical=False, seeding="kmeans++"))
    assert len(res.centroids[-1]) == 5
    assert _tiny_has_own_leaf(x, lab, res.centroids[-1])


def test_random_seeding_starves_the_tiny_cluster_somewhere():
    """The failure k-means++ fixes: with FAISS's uniform seeds the tiny cluster loses its leaf."""
    misses = 0
    for seed in range(4):
        x, lab = tiny_and_huge(seed)
        res = fit_hierarchy(x, [2, 5], FitParams(seed=seed, spherical=False, seeding="random"))
        misses += not _tiny_has_own_leaf(x, lab, res.centroids[-1])
    assert misses > 0


def test_seeding_is_deterministic_under_the_seed():
    x, _ = gaussian_mixture(3000, k=20, d=16, seed=1)
    a = fit_hierarchy(x, [4, 20], FitParams(seed=3, seeding="kmeans++", refine_iters=0))
    b = fit_hierarchy(x, [4, 20], FitParams(seed=3, seeding="kmeans++", refine_iters=0))
    c = fit_hierarchy(x, [4, 20], FitParams(seed=4, seeding="kmeans++", refine_iters=0))
    assert all(np.array_equal(p, q) for p, q in zip(a.centroids, b.centroids))
    assert not np.array_equal(a.centroids[-1], c.centroids[-1])
    assert np.array_equal(kmeanspp(x, 10, 5), kmeanspp(x, 10, 5))


def test_level_seeds_give_every_cell_a_child_and_follow_the_potential():
    rng = np.random.default_rng(0)
    tight = rng.standard_normal((1000, 4)).astype(np.float32) * 0.01  # one big, tight cell
    spread = np.repeat(np.eye(4, dtype=np.float32) * 5, 25, axis=0)  # a small cell of 4 far groups
    spread += rng.standard_normal(spread.shape).astype(np.float32) * 0.01
    x = np.concatenate([tight, spread + 20])
    members = np.repeat([0, 1], [1000, 100])
    seeds = level_seeds(x, members, 2, 5, seed=0)
    assert [len(s) for s in seeds] == [1, 4]  # by size the big cell would get 4 of the 5
    assert (members[seeds[1]] == 1).all()


def test_kmeanspp_seeding_is_independent_of_shard_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_mixture(a, 4, 150, d=8)
    perm = np.random.default_rng(7).permutation(600)
    write_mixture(b, 4, 150, d=8, order=perm.tolist())  # same regions, other shards
    cfg = BuildConfig(output=str(a), kmeans=KMeansConfig(levels=(4, 3), sample_size=400, seeding="kmeans++"))
    run_fit_kmeans(a, cfg, [0, 1, 2, 3])
    run_fit_kmeans(b, replace(cfg, output=str(b)), [2, 0, 3, 1])
    ta, tb = ClusterTree.load(a / "kmeans"), ClusterTree.load(b / "kmeans")
    assert ta.meta["seeding"] == "kmeans++"
    assert ta.meta["centroids_sha256"] == tb.meta["centroids_sha256"]
