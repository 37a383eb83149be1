"""``regionset.common.files``: whole files, ``.npy`` row ranges and prefix removal, on disk and on S3 alike."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.common.files import load_npy, read_npy_rows, remove_tree, save_npy, write_atomic
from regionset.common.storage import as_path
from tests.s3server import s3  # noqa: F401 (fixture)


@pytest.mark.parametrize("where", ["disk", "s3"])
def test_npy_rows_atomic_writes_and_removal(where, s3, tmp_path):  # noqa: F811
    root = as_path(str(tmp_path / "f") if where == "disk" else s3.url("files"))
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    save_npy(root / "a" / "x.npy", x)
    save_npy(root / "a" / "empty.npy", np.zeros((0, 8), np.float32))
    assert np.array_equal(load_npy(root / "a" / "x.npy"), x)
    for lo, hi in ((0, 50), (7, 19), (49, 50), (20, 20), (45, 99)):
        assert np.array_equal(read_npy_rows(root / "a" / "x.npy", lo, hi), x[lo:hi])
    assert read_npy_rows(root / "a" / "empty.npy", 0, 3).shape == (0, 8)
    write_atomic(root / "b.json", b"{}")
    write_atomic(root / "b.json", b'{"v": 2}')  # replaced whole
    assert (root / "b.json").read_bytes() == b'{"v": 2}'
    if where == "disk":
        assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    remove_tree(root / "a")
    assert not (root / "a" / "x.npy").exists() and (root / "b.json").exists()
    remove_tree(root / "missing")  # nothing to remove is fine
