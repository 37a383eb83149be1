"""Beam search through the cluster tree: a full-width beam is exact, a narrow one agrees closely."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.models.kmeans_beam import beam_search, children_csr, covers_tree
from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_tree
from tests.label_data import gaussian_mixture


@pytest.fixture(scope="module")
def fitted():
    x, _ = gaussian_mixture(6000, k=120, d=16, seed=3)
    tree, _ = fit_tree(x, KMeansConfig(levels=(16, 8), sample_size=6000, niter=8))
    q, _ = gaussian_mixture(3000, k=120, d=16, seed=3)  # same centres, fresh noise below
    q = q + np.random.default_rng(9).standard_normal(q.shape).astype(np.float32) * 0.5
    return tree, q


def test_beam_as_wide_as_level_0_equals_exact_bit_for_bit(fitted):
    tree, q = fitted
    k0 = len(tree.centroids[0])
    exact_paths, exact_dist = tree.assign(q, "numpy", "exact")
    paths, dist = tree.assign(q, "numpy", "beam", beam=k0)
    assert np.array_equal(paths, exact_paths) and np.array_equal(dist, exact_dist)


def test_beam_8_agrees_with_exact_on_a_gaussian_mixture(fitted):
    tree, q = fitted
    exact_paths, exact_dist = tree.assign(q, "numpy", "exact")
    paths, dist = tree.assign(q, "numpy", "beam", beam=8)
    same = (paths[:, -1] == exact_paths[:, -1]).mean()
    assert same >= 0.95
    assert dist.mean() <= exact_dist.mean() * 1.01
    assert (dist >= exact_dist - 1e-5).all()  # the beam never beats the exact nearest leaf
    # the returned path is the leaf's ancestry and the distance is to that leaf
    assert np.array_equal(tree.parents[1][paths[:, 1]], paths[:, 0])
    xs = q / np.linalg.norm(q, axis=1, keepdims=True)
    d2 = ((xs - tree.centroids[-1][paths[:, -1]]) ** 2).sum(1)
    np.testing.assert_allclose(dist, d2, atol=1e-4)


def test_beam_of_one_is_greedy_routing_and_can_miss(fitted):
    tree, q = fitted
    exact_paths, _ = tree.assign(q, "numpy", "exact")
    paths, _ = tree.assign(q, "numpy", "beam", beam=1)
    xs = q / np.linalg.norm(q, axis=1, keepdims=True)
    coarse = ((xs[:, None] - tree.centroids[0][None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(paths[:, 0], coarse)  # greedy: the nearest level-0 centroid first
    assert (paths[:, -1] != exact_paths[:, -1]).any()


def test_three_levels_and_padding():
    rng = np.random.default_rng(0)
    c0 = rng.standard_normal((3, 4)).astype(np.float32)
    c1 = rng.standard_normal((5, 4)).astype(np.float32)
    c2 = rng.standard_normal((9, 4)).astype(np.float32)
    p1 = np.array([0, 0, 1, 2, 2], np.int32)  # parent 1 has a single child: a beam of 2 pads
    p2 = np.array([0, 0, 1, 2, 3, 3, 4, 4, 4], np.int32)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    leaf, dist = beam_search(x, [c0, c1, c2], [np.full(3, -1), p1, p2], beam=5, batch_rows=7)
    exact = ((x[:, None] - c2[None]) ** 2).sum(-1)
    assert np.array_equal(leaf, exact.argmin(1))  # beam 5 keeps every node here
    np.testing.assert_allclose(dist, exact.min(1), atol=1e-4)
    assert covers_tree([3, 5, 9], 5) and not covers_tree([3, 5, 9], 4)
    off, kids = children_csr(p2, 5)
    assert off.tolist() == [0, 2, 3, 4, 6, 9] and kids.tolist() == list(range(9))
    with pytest.raises(ValueError, match="assign.beam"):
        beam_search(x, [c0, c1, c2], [np.full(3, -1), p1, p2], beam=0)


def test_unknown_search_is_a_clear_error(fitted):
    tree, q = fitted
    with pytest.raises(ValueError, match="assign.search"):
        ClusterTree.assign(tree, q[:3], "numpy", "fuzzy")


def test_result_does_not_depend_on_threads_or_blocks_and_children_may_be_interleaved():
    rng = np.random.default_rng(4)
    c0 = rng.standard_normal((6, 8)).astype(np.float32)
    c1 = rng.standard_normal((40, 8)).astype(np.float32)
    p1 = rng.permutation(np.arange(40) % 6).astype(np.int32)  # a parent's children are not adjacent
    x = rng.standard_normal((500, 8)).astype(np.float32)
    one = beam_search(x, [c0, c1], [np.full(6, -1), p1], beam=2, threads=1)
    many = beam_search(x, [c0, c1], [np.full(6, -1), p1], beam=2, batch_rows=37, threads=3)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
    full = beam_search(x, [c0, c1], [np.full(6, -1), p1], beam=6, threads=2)  # every parent kept
    exact = ((x[:, None] - c1[None]) ** 2).sum(-1)
    assert np.array_equal(full[0], exact.argmin(1))
    assert (exact[np.arange(500), one[0]] >= exact.min(1) - 1e-5).all()
