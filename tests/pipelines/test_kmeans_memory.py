"""The per-parent fit's memory savings change no number: per-leaf sums in blocks equal the one-shot
sums bit for bit, row keys do not depend on a row's position, parent points and ``.npy`` row reads
equal the plain reads."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.common.files import read_npy_rows, save_npy
from regionset.common.memory import release_memory
from regionset.pipelines.kmeans.partition import _take
from regionset.pipelines.kmeans.refine import _cluster_sums
from regionset.pipelines.kmeans.tree import _row_keys


def _one_shot_sums(x: np.ndarray, ids: np.ndarray, k: int, chunk_bytes: int) -> np.ndarray:
    """The sums as they were computed before: each chunk's rows sorted and widened at once."""
    sums = np.zeros((k, x.shape[1]))
    step = max(1, chunk_bytes // (8 * x.shape[1]))
    for i in range(0, len(x), step):
        part = ids[i:i + step]
        counts = np.bincount(part, minlength=k)
        nz = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts[nz])[:-1]])
        sums[nz] += np.add.reduceat(x[i:i + step][np.argsort(part, kind="stable")].astype(np.float64), starts, axis=0)
    return sums


@pytest.mark.parametrize("block_rows", [1, 7, 100, 4096])
@pytest.mark.parametrize("chunk_bytes", [1 << 12, 1 << 27])
def test_block_sums_equal_one_shot_sums_bit_for_bit(block_rows, chunk_bytes):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3000, 24)) * 10.0 ** rng.integers(-3, 4, (3000, 1))).astype(np.float32)
    ids = rng.integers(0, 40, 3000)
    ids[ids % 5 == 0] = 3  # one leaf much bigger than a block
    sums, counts = _cluster_sums(x, ids, 45, chunk_bytes, block_rows)
    assert sums.tobytes() == _one_shot_sums(x, ids, 45, chunk_bytes).tobytes()
    assert np.array_equal(counts, np.bincount(ids, minlength=45)) and not sums[40:].any()


def test_row_keys_depend_on_the_row_only():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 16)).astype(np.float32)
    x[4999] = x[3] = x[2500]  # duplicates in different blocks
    keys = _row_keys(x, 7, block_rows=64)
    assert keys[3] == keys[2500] == keys[4999]
    assert len(np.unique(keys)) == 4998  # every other row its own key
    np.testing.assert_allclose(keys, x.astype(np.float64) @ np.random.default_rng(7).standard_normal(16), rtol=1e-9)


def test_take_is_concatenate_then_index():
    rng = np.random.default_rng(2)
    pieces = [rng.standard_normal((n, 5)).astype(np.float32) for n in (3, 0, 10, 1)]
    want = np.concatenate(pieces)
    order = rng.permutation(len(want))
    got = _take(list(pieces), order)
    assert np.array_equal(got, want[order])


def test_npy_rows_read_into_the_array_and_truncation_is_an_error(tmp_path):
    a = np.arange(60, dtype=np.float16).reshape(20, 3)
    save_npy(tmp_path / "a.npy", a)
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)
    rows = read_npy_rows(tmp_path / "a.npy", 4, 9)
    assert np.array_equal(rows, a[4:9]) and rows.flags.writeable
    assert read_npy_rows(tmp_path / "a.npy", 18, 30).shape == (2, 3)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-4])  # the header still says 20 rows
    with pytest.raises(ValueError, match="truncated"):
        read_npy_rows(tmp_path / "a.npy", 15, 20)
    release_memory()  # callable anywhere (no-op where there is no glibc)
