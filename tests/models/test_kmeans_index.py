"""Nearest-centroid search: backends agree; tree paths, save/load and hash."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree, nearest_centroids


@pytest.mark.parametrize("backend", ["numpy", "torch", "faiss"])
def test_backends_agree_with_brute_force(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    c = rng.standard_normal((37, 16)).astype(np.float32)
    d2 = ((x[:, None] - c[None]) ** 2).sum(-1)
    ids, dist = nearest_centroids(x, c, backend, batch_size=64)
    assert np.array_equal(ids, d2.argmin(1))
    assert np.allclose(dist, d2.min(1), rtol=1e-4, atol=1e-4)


def test_empty_input():
    ids, dist = nearest_centroids(np.zeros((0, 4), np.float32), np.ones((3, 4), np.float32), "numpy")
    assert ids.shape == (0,) and dist.shape == (0,)


def test_tree_paths_save_load_hash(tmp_path):
    c0 = np.eye(4, dtype=np.float32)[:2]
    c1 = np.eye(4, dtype=np.float32)
    tree = ClusterTree([c0, c1], [np.array([-1, -1], np.int32), np.array([0, 0, 1, 1], np.int32)],
                       spherical=True, meta={"sizes": [2, 4], "spherical": True})
    digest = tree.save(tmp_path)
    back = ClusterTree.load(tmp_path)
    assert back.meta["centroids_sha256"] == digest and back.num_leaves == 4 and back.dim == 4
    paths, dist = back.assign(np.array([[0, 0, 5, 0], [0, 3, 0, 0]], np.float32))
    assert paths.tolist() == [[1, 2], [0, 1]]
    assert np.allclose(dist, 0, atol=1e-6)  # spherical: queries normalised first
    with pytest.raises(FileNotFoundError, match="fit_kmeans"):
        ClusterTree.load(tmp_path / "missing")



def test_score_block_is_capped_in_bytes(monkeypatch):
    import regionset.models.kmeans_index as ki

    assert ki.block_rows(100) == 4096
    assert ki.block_rows(1_000_000) == (256 << 20) // 4_000_000  # 67 rows: 256 MiB of scores, not 16 GiB
    rng = np.random.default_rng(3)
    x, c = rng.standard_normal((500, 8), dtype=np.float32), rng.standard_normal((300, 8), dtype=np.float32)
    want = nearest_centroids(x, c, "numpy")
    monkeypatch.setattr(ki, "SCORE_BLOCK_BYTES", 300 * 4 * 7)
    assert ki.block_rows(300) == 7
    got = nearest_centroids(x, c, "numpy")  # 72 blocks of <= 7 rows: the same answer
    assert np.array_equal(want[0], got[0]) and np.allclose(want[1], got[1], atol=1e-5)
