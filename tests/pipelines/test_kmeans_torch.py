"""kmeans.backend: torch on the CPU against the faiss backend: same tree quality (inertia within 1 %,
NMI within 0.01 on the Zipf mixture), same tree files, deterministic under a seed; its exact and beam
searches agree with numpy's; the config key and the fit signature."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from regionset.common.typed_config import ConfigError
from regionset.models.kmeans_beam import beam_search
from regionset.models.kmeans_index import ClusterTree, l2_normalize, nearest_centroids
from regionset.models.kmeans_torch import nearest
from regionset.models.kmeans_torch_beam import beam_search_torch
from regionset.pipelines.config import load_config
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_tree
from regionset.pipelines.kmeans.fit_choice import fit_signature, reusable
from regionset.pipelines.kmeans.params import FitParams
from regionset.pipelines.kmeans.tree import fit_hierarchy
from tests.pipelines.test_kmeans import _zipf_mixture, nmi


def _zipf_unit(n: int, d: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``centres`` directions, sizes ∝ 1/rank, one spread per cluster (the
    Zipf mixture of bench/kmeans_zipf.py) and their true cluster ids."""
    rng = np.random.default_rng(seed)
    c = l2_normalize(rng.standard_normal((centres, d)).astype(np.float32))
    w = 1.0 / np.arange(1, centres + 1)
    lab = rng.choice(centres, n, p=w / w.sum())
    spread = rng.uniform(0.15, 0.6, centres).astype(np.float32) / np.sqrt(d)
    x = c[lab] + rng.standard_normal((n, d)).astype(np.float32) * spread[lab, None]
    return l2_normalize(x).astype(np.float32), lab


# Every k-means trains on all its points (no subsample): FAISS and torch draw theirs from different
# generators, and at this size that draw alone moves inertia by several % either way.
ALL_POINTS = 2_000


@pytest.fixture(scope="module")
def zipf_trees():
    x, lab = _zipf_unit(12_000, 32, 96, seed=3)
    kc = KMeansConfig(levels=(8, 12), max_points_per_centroid=ALL_POINTS)  # 96 leaves = true clusters
    return x, lab, {b: fit_tree(x, dataclasses.replace(kc, backend=b))[0] for b in ("faiss", "torch")}


def test_zipf_mixture_torch_matches_faiss_inertia_and_nmi(zipf_trees):
    x, lab, trees = zipf_trees
    got = {}
    for b, tree in trees.items():
        assert tree.meta["backend"] == b and tree.meta["sizes"] == [8, 96]
        leaf, dist = nearest_centroids(x, tree.centroids[-1], "numpy")
        got[b] = (float(dist.mean()), nmi(lab, leaf))
    print(f"faiss inertia {got['faiss'][0]:.5f} NMI {got['faiss'][1]:.4f}; "
          f"torch inertia {got['torch'][0]:.5f} NMI {got['torch'][1]:.4f}")
    assert abs(got["torch"][0] / got["faiss"][0] - 1) <= 0.01
    assert abs(got["torch"][1] - got["faiss"][1]) <= 0.01


def test_unnormalised_zipf_three_levels_within_one_percent():
    x = _zipf_mixture(5_000, 48, 16, seed=5)
    inertia = {}
    for b in ("faiss", "torch"):
        res = fit_hierarchy(x, [4, 12, 96], FitParams(spherical=False, backend=b, max_points_per_centroid=ALL_POINTS))
        assert [len(c) for c in res.centroids] == [4, 12, 96]
        inertia[b] = float(nearest_centroids(x, res.centroids[-1], "numpy")[1].mean())
    assert abs(inertia["torch"] / inertia["faiss"] - 1) <= 0.01, inertia


def test_random_seeding_without_refinement_is_close():
    """``seeding: random``: each backend draws its own initial points, so the trees differ by more
    than rounding; the same order of inertia (5 %) is what is asked here."""
    x = _zipf_mixture(6_000, 48, 16, seed=8)
    inertia = {}
    for b in ("faiss", "torch"):
        res = fit_hierarchy(x, [6, 48], FitParams(spherical=False, backend=b, seeding="random", refine_iters=0))
        assert [len(c) for c in res.centroids] == [6, 48]
        inertia[b] = float(nearest_centroids(x, res.centroids[-1], "numpy")[1].mean())
    assert abs(inertia["torch"] / inertia["faiss"] - 1) <= 0.05, inertia


def test_torch_fit_is_deterministic_and_writes_the_same_files(tmp_path, zipf_trees):
    x, _, trees = zipf_trees
    again, _ = fit_tree(x, KMeansConfig(levels=(8, 12), max_points_per_centroid=ALL_POINTS, backend="torch"))
    for a, b in zip(again.centroids, trees["torch"].centroids):
        assert np.array_equal(a, b)
    names = {}
    for b, tree in trees.items():
        tree.save(tmp_path / b)
        names[b] = sorted(p.relative_to(tmp_path / b).as_posix() for p in (tmp_path / b).rglob("*") if p.is_file())
    assert names["faiss"] == names["torch"]
    loaded = ClusterTree.load(tmp_path / "torch")
    for backend in ("numpy", "torch"):  # either search labels a torch tree, and a faiss one
        for which in ("faiss", "torch"):
            paths, _ = ClusterTree.load(tmp_path / which).assign(x[:500], backend, "exact")
            ref, _ = trees[which].assign(x[:500], "numpy", "exact")
            assert np.array_equal(paths, ref)
    assert loaded.meta["signature"]["backend"] == "torch" and "backend" not in trees["faiss"].meta["signature"]


def test_torch_exact_search_matches_numpy_in_any_block_size():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    c = rng.standard_normal((200, 16)).astype(np.float32)
    ref_ids, ref_d = nearest_centroids(x, c, "numpy")
    for free in (None, 1 << 20):  # 1 MiB: blocks of a few hundred rows
        ids, d = nearest(x, c, "cpu", free=free)
        assert np.array_equal(ids, ref_ids) and np.allclose(d, ref_d, atol=1e-4)


def test_torch_beam_matches_numpy_beam(zipf_trees):
    x, _, trees = zipf_trees
    tree = trees["torch"]
    for beam in (1, 3, 8):
        ref = beam_search(x, tree.centroids, tree.parents, beam)
        got = beam_search_torch(x, tree.centroids, tree.parents, beam, "cpu", free=4 << 20)
        assert np.array_equal(got[0], ref[0]) and np.allclose(got[1], ref[1], atol=1e-5)
    paths, _ = tree.assign(x[:300], "torch", "beam", 3)  # ClusterTree.assign's beam on the torch backend
    assert np.array_equal(paths, tree.assign(x[:300], "numpy", "beam", 3)[0])


def test_backend_key_default_signature_and_reuse():
    assert load_config(None, ["kmeans.backend=torch"]).kmeans.backend == "torch"
    with pytest.raises(ConfigError, match="kmeans.backend"):
        load_config(None, ["kmeans.backend=cuda"])
    with pytest.raises(ConfigError, match="kmeans.backend"):
        KMeansConfig(backend="cuda").check()  # type: ignore[arg-type]
    kc = KMeansConfig(fit="local")
    old = fit_signature(dataclasses.replace(kc, backend="faiss"))
    assert "backend" not in old  # trees fitted before the key existed keep their signature
    torch_sig = fit_signature(dataclasses.replace(kc, backend="torch"))
    assert torch_sig == {**old, "backend": "torch"}
    assert reusable(old, kc) and reusable(torch_sig, kc)  # backend auto: either tree is the tree
    assert reusable(old, dataclasses.replace(kc, backend="faiss"))
    assert not reusable(torch_sig, dataclasses.replace(kc, backend="faiss"))
    assert not reusable(old, dataclasses.replace(kc, backend="torch"))


@pytest.mark.parametrize("parents", [1, 6])
def test_torch_level_seeding_picks_the_numpy_seeds(parents):
    """The GPU path of ``seeding: kmeans++`` (``seeding_torch``), run here on the CPU: the same seeds
    as the numpy pass, for a level-0 and a level-wide pass over several cells (with a subsample)."""
    from regionset.pipelines.kmeans.seeding import level_seeds
    from regionset.pipelines.kmeans.seeding_torch import level_seeds_torch

    x, lab = _zipf_unit(6_000, 16, 40, seed=2)
    members = (lab % parents).astype(np.int64)
    ref = level_seeds(x, members, parents, 40, 11, points_per_centroid=100)
    got = level_seeds_torch(x, members, parents, 40, 11, points_per_centroid=100, device="cpu")
    assert [len(s) for s in got] == [len(s) for s in ref] and sum(map(len, got)) == 40
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))


def test_lloyd_streams_blocks_when_the_points_do_not_fit_and_gets_the_same_centroids():
    """A small memory budget keeps the training points off the device (copied block by block) and
    makes the blocks small; the centroids are those of one big block."""
    from regionset.pipelines.kmeans.lloyd_torch import lloyd, plan

    x = _zipf_mixture(4_000, 24, 12, seed=4)  # 4,000 × 12: 192 KB
    init = x[:24].copy()
    free = 256 << 10  # 256 KiB: the points do not fit half of it; blocks of 769 rows
    on_device, rows = plan(len(x), 24, 12, free)
    assert not on_device and rows < len(x)
    small = lloyd(x, 24, 5, 0, False, 1000, init, "cpu", free=free)
    big = lloyd(x, 24, 5, 0, False, 1000, init, "cpu")
    assert np.allclose(small, big, atol=1e-5)
