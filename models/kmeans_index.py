"""The fitted cluster tree on disk, and exact nearest-centroid search over it.

``OUT/kmeans/`` holds one folder per level (``level-0`` is the coarsest) with ``centroids.npy``
(float32, K_i × d) and ``parents.npy`` (int32, K_i: the id of each centroid's parent at level i-1,
-1 at level 0), plus ``kmeans.json``. Ids are global per level: the leaf id is the training class.

A vector is routed to its exact nearest **leaf** (a flat search over all leaves) and its path is that
leaf's chain of ancestors; routing through the nearest coarse centroid first is cheaper but raised
k-means error from +14 % to +34 % over flat on clustered data (docs/kmeans-labels.md). The search is a batched
matmul + argmin: on 2 CPU threads numpy beat ``faiss.IndexFlatL2`` 3× at d = 64 and 2× at d = 512
(bench/kmeans.py); on a GPU, ``auto`` uses a FAISS flat index on every visible GPU.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from regionset.common import threads as worker_threads
from regionset.common.files import load_npy, save_npy, write_atomic
from regionset.common.storage import RemotePath, as_path
from regionset.models.registry import executor_gpus

KMEANS_JSON = "kmeans.json"
Backend = Literal["auto", "numpy", "torch", "faiss"]


def level_dir(root: Path | RemotePath, level: int) -> Path | RemotePath:
    """``root/level-<level>`` (a folder, or a prefix on an object store)."""
    return as_path(root) / f"level-{level}"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def embedding_matrix(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(n, d) float32 array from a ``fixed_size_list<float16|float32>[d]`` column."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    d = col.type.list_size
    if len(col) == 0:
        return np.zeros((0, d), np.float32)
    if col.null_count:
        raise ValueError("embedding column has nulls")
    return col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)


def _pick_backend(backend: Backend) -> str:
    """``auto``: faiss when it sees a GPU, torch when it is loaded and sees one, else numpy."""
    if backend != "auto":
        return backend
    if executor_gpus() == 0:  # a Ray/Spark worker that was given no GPU: the node's GPUs are others'
        return "numpy"
    try:
        import faiss
    except ImportError:  # a torch-only install (the torch k-means backend needs no faiss)
        faiss = None
    if faiss is not None and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
        return "faiss"
    torch = sys.modules.get("torch")  # importing torch only to look for a GPU costs seconds
    if torch is not None and torch.cuda.is_available():
        return "torch"
    return "numpy"


SCORE_BLOCK_BYTES = 256 << 20  # the (rows x k) float32 score block of one matmul, at most


def block_rows(k: int, batch_size: int = 4096) -> int:
    """Query rows per matmul block: ``batch_size``, or fewer so the rows × ``k`` float32 scores fit
    ``SCORE_BLOCK_BYTES``.

    Args:
        k: centroids searched.
        batch_size: the most rows per block.
    """
    return max(1, min(batch_size, SCORE_BLOCK_BYTES // (4 * max(1, k))))


def nearest_centroids(x: np.ndarray, centroids: np.ndarray, backend: Backend = "auto",
                      batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest centroid (squared L2) of every row of ``x``.

    Args:
        x: (n, d) float32 queries.
        centroids: (k, d) float32 centroids.
        backend: ``numpy`` (CPU matmul), ``torch`` (CUDA when present, ``regionset.models.kmeans_torch``:
            blocks sized to the device's free memory), ``faiss`` (IndexFlatL2),
            or ``auto`` (faiss on all GPUs when faiss sees one, else numpy).
        batch_size: queries per matmul block, at most; fewer when the block × k score matrix would
            pass ``SCORE_BLOCK_BYTES`` (at k = 1M leaves a 4,096-row block would be 16 GiB).

    Returns:
        (ids int64 of shape (n,), squared distances float32 of shape (n,)); ties go to the lowest id.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    which = _pick_backend(backend)
    batch_size = block_rows(c.shape[0], batch_size)
    if which == "faiss":
        import faiss

        faiss.omp_set_num_threads(worker_threads.current())  # the worker's thread budget
        index = faiss.IndexFlatL2(c.shape[1])
        if getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(c)
        dist, ids = index.search(x, 1)
        return ids[:, 0].astype(np.int64), np.maximum(dist[:, 0], 0).astype(np.float32)
    ids = np.empty(n, np.int64)
    dist = np.empty(n, np.float32)
    if which == "torch":  # blocks sized to the device's free memory, not ``batch_size``
        from regionset.models.kmeans_torch import nearest

        return nearest(x, c, "auto")
    cn = (c * c).sum(1)
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size]
        s = xb @ c.T
        s *= -2.0
        s += cn
        arg = s.argmin(1)
        ids[i:i + batch_size] = arg
        dist[i:i + batch_size] = np.maximum(s[np.arange(len(xb)), arg] + (xb * xb).sum(1), 0)
    return ids, dist


@dataclass
class ClusterTree:
    """Centroids of every level, parent links and the metadata of the fit.

    Args:
        centroids: per level, (K_i, d) float32; level 0 is the coarsest, the last are the leaves.
        parents: per level, (K_i,) int32 parent ids at the level above (-1 at level 0).
        spherical: centroids are unit-norm and queries are L2-normalised before the search.
        meta: the ``kmeans.json`` document.
    """

    centroids: list[np.ndarray]
    parents: list[np.ndarray]
    spherical: bool
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.centroids[-1].shape[1])

    @property
    def num_leaves(self) -> int:
        return int(self.centroids[-1].shape[0])

    def paths(self, leaf_ids: np.ndarray) -> np.ndarray:
        """(n, levels) int32 paths from level 0 down to the given leaf ids."""
        depth = len(self.centroids)
        out = np.empty((len(leaf_ids), depth), np.int32)
        cur = np.asarray(leaf_ids, np.int64)
        for level in range(depth - 1, -1, -1):
            out[:, level] = cur
            cur = self.parents[level][cur] if level else cur
        return out

    def assign(self, x: np.ndarray, backend: Backend = "auto", search: str = "exact",
               beam: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Route every row to a leaf: (paths (n, levels) int32, squared distance).

        Args:
            x: (n, d) queries.
            backend: the exact search's backend (``nearest_centroids``).
            search: ``exact`` (nearest of all leaves) or ``beam`` (``regionset.models.kmeans_beam``, or
                ``kmeans_torch_beam`` when the backend is torch; a beam that keeps every non-leaf
                node is the exact search).
            beam: nodes kept per level by the beam.
        """
        from regionset.models.kmeans_beam import beam_search, covers_tree

        x = np.asarray(x, np.float32)
        if self.spherical:
            x = l2_normalize(x)
        if search == "beam" and not covers_tree([len(c) for c in self.centroids], beam):
            if _pick_backend(backend) == "torch":
                from regionset.models.kmeans_torch_beam import beam_search_torch

                leaf, dist = beam_search_torch(x, self.centroids, self.parents, beam)
            else:
                leaf, dist = beam_search(x, self.centroids, self.parents, beam)
        elif search in ("exact", "beam"):
            leaf, dist = nearest_centroids(x, self.centroids[-1], backend)
        else:
            raise ValueError(f"assign.search: expected exact or beam, got {search!r}")
        return self.paths(leaf), dist

    def save(self, root: Path | RemotePath) -> str:
        """Write every level's arrays, then ``kmeans.json`` (the commit); return the centroids' hash."""
        self.write_levels(root)
        return self.write_meta(root)

    def write_levels(self, root: Path | RemotePath) -> None:
        """Write every level's ``centroids.npy`` and ``parents.npy`` (each whole, under its final name)."""
        for level, (c, p) in enumerate(zip(self.centroids, self.parents)):
            d = level_dir(root, level)
            save_npy(d / "centroids.npy", c.astype(np.float32))
            save_npy(d / "parents.npy", p.astype(np.int32))

    def write_meta(self, root: Path | RemotePath) -> str:
        """Write ``kmeans.json`` with the centroids' hash, last: its presence means a complete tree
        (on disk and on object stores alike, where there is no rename); return the hash."""
        self.meta["centroids_sha256"] = tree_hash(self.centroids, self.parents)
        write_atomic(as_path(root) / KMEANS_JSON, json.dumps(self.meta, indent=2, sort_keys=True).encode())
        return self.meta["centroids_sha256"]

    @classmethod
    def load(cls, root: Path | RemotePath) -> ClusterTree:
        """Read a tree written by ``save``; FileNotFoundError names the missing ``kmeans.json``."""
        root = as_path(root)
        meta = read_meta(root)
        if meta is None:
            raise FileNotFoundError(f"{root / KMEANS_JSON} not found: run the fit_kmeans step first")
        cents = [load_npy(level_dir(root, i) / "centroids.npy") for i in range(len(meta["sizes"]))]
        pars = [load_npy(level_dir(root, i) / "parents.npy") for i in range(len(meta["sizes"]))]
        return cls(cents, pars, bool(meta["spherical"]), meta)


def tree_hash(centroids: list[np.ndarray], parents: list[np.ndarray]) -> str:
    """sha256 over every level's centroid and parent bytes."""
    h = hashlib.sha256()
    for c, p in zip(centroids, parents):
        h.update(np.ascontiguousarray(c, np.float32).tobytes())
        h.update(np.ascontiguousarray(p, np.int32).tobytes())
    return h.hexdigest()


META_READ_TRIES = 4
"""Reads of ``kmeans.json`` before an error that is not "no such file" becomes ``TreeReadError``."""
META_RETRY_WAIT_S = 0.5
"""The first wait between those reads; it doubles each time (0.5 + 1 + 2 s at most)."""


class TreeReadError(RuntimeError):
    """``kmeans.json`` exists (or may exist) but could not be read: never taken for "no tree"."""


def read_meta(root: Path | RemotePath) -> dict[str, Any] | None:
    """``kmeans.json`` of a tree folder or prefix, or None when there is no complete tree.

    Only a missing file means no tree. Any other error (a network error, throttling, a file that is
    not JSON) is retried ``META_READ_TRIES`` times, then raised as ``TreeReadError`` naming the path:
    a transient read error must not become "no tree", which would label nothing.
    """
    path = as_path(root) / KMEANS_JSON
    error: Exception | None = None
    for attempt in range(META_READ_TRIES):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except Exception as e:  # noqa: BLE001 (s3fs and gcsfs raise more than OSError)
            error = e
        if attempt + 1 < META_READ_TRIES:
            time.sleep(META_RETRY_WAIT_S * 2 ** attempt)
    raise TreeReadError(f"{path}: unreadable after {META_READ_TRIES} tries "
                        f"({type(error).__name__}: {error})")
