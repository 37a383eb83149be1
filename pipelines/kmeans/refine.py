"""The global Lloyd refinement of a fitted tree, and the per-leaf sums it and the map-reduce share.

``refine`` moves all leaves at once with every sample point (exact assignment, then means);
``regionset.pipelines.kmeans.distributed`` runs the same update as map-reduce over the level-0 parents
(``_cluster_sums`` per parent, reduced on the driver, then ``_means``, ``_reseed_empty`` and
``upper_means`` exactly as here).
"""

from __future__ import annotations

import numpy as np

from regionset.models.kmeans_index import l2_normalize
from regionset.pipelines.kmeans.params import FitParams, FitResult, ProgressFn
from regionset.pipelines.kmeans.search import nearest


def _cluster_sums(x: np.ndarray, ids: np.ndarray, k: int, chunk_bytes: int = 1 << 27,
                  block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of the rows of ``x`` (float64) and counts.

    Rows are summed in chunks of about ``chunk_bytes`` of float64 (``np.add.reduceat`` over the
    chunk's rows sorted by cluster, then added to the totals: the numbers depend on ``chunk_bytes``).
    The sorted rows are gathered and widened ``block_rows`` at a time, in whole clusters, so the
    temporaries are one block (or one cluster bigger than a block) and the chunk's per-cluster sums,
    not the chunk in float32 and float64."""
    counts = np.bincount(ids, minlength=k)
    sums = np.zeros((k, x.shape[1]), np.float64)
    step = max(1, chunk_bytes // (8 * x.shape[1]))
    for i in range(0, len(x), step):
        part = ids[i:i + step]
        order = np.argsort(part, kind="stable")
        part_counts = np.bincount(part, minlength=k)
        nz = np.flatnonzero(part_counts)
        starts = np.concatenate([[0], np.cumsum(part_counts[nz])[:-1]])
        sums[nz] += _sorted_sums(x[i:i + step], order, starts, block_rows)
    return sums, counts


def _sorted_sums(x: np.ndarray, order: np.ndarray, starts: np.ndarray, block_rows: int) -> np.ndarray:
    """``np.add.reduceat(x[order].astype(float64), starts, axis=0)`` (each group's sum depends on its
    own rows only), computed on runs of whole groups of about ``block_rows`` rows (a bigger group
    alone), so only one run of ``x[order]`` is in memory at a time, not all of it in float32 and float64."""
    out = np.empty((len(starts), x.shape[1]), np.float64)
    ends = np.append(starts[1:], len(order))
    g = 0
    while g < len(starts):
        last = max(g, int(np.searchsorted(ends, starts[g] + block_rows, side="right")) - 1)  # whole groups
        lo, hi = int(starts[g]), int(ends[last])
        out[g:last + 1] = np.add.reduceat(x[order[lo:hi]].astype(np.float64), starts[g:last + 1] - lo, axis=0)
        g = last + 1
    return out


def _means(sums: np.ndarray, counts: np.ndarray, old: np.ndarray, spherical: bool) -> np.ndarray:
    """New centroids from sums and counts; a cluster with no point keeps its old centroid."""
    new = old.astype(np.float64, copy=True)
    nz = counts > 0
    new[nz] = sums[nz] / counts[nz, None]
    new = new.astype(np.float32)
    return l2_normalize(new) if spherical else new


def _reseed_empty(leaves: np.ndarray, parents: np.ndarray, counts: np.ndarray, spherical: bool) -> int:
    """Move every leaf that got no point next to one of the largest leaves, as FAISS does: the pair
    is pushed apart by a relative ±1/1024 on alternate coordinates so the next assignment splits that
    cell between them. The moved leaf takes the big leaf's parent. Returns how many were moved."""
    empty = np.flatnonzero(counts == 0)
    big = np.argsort(-counts, kind="stable")[:len(empty)]
    big = big[counts[big] > 1]  # only a leaf with two or more points can be split
    empty = empty[:len(big)]
    if not len(empty):
        return 0
    eps = np.where(np.arange(leaves.shape[1]) % 2 == 0, 1.0, -1.0).astype(np.float32) / 1024
    src = leaves[big].copy()
    leaves[empty], leaves[big] = src * (1 + eps), src * (1 - eps)
    if spherical:
        leaves[empty], leaves[big] = l2_normalize(leaves[empty]), l2_normalize(leaves[big])
    parents[empty] = parents[big]
    return len(empty)


def refine(x: np.ndarray, res: FitResult, p: FitParams, progress: ProgressFn | None = None) -> None:
    """Global Lloyd iterations over **all leaves at once** (exact assignment, then means).

    Each parent's k-means only sees its own cell, so leaves near a cell border are placed without
    the points just across it; at K = 16,384 that left inertia 1.053× flat k-means (bench/kmeans.py).
    A few global iterations move the leaves with every point. The tree keeps its shape: a leaf keeps
    its parent, except a leaf left with no point, which is re-seeded beside one of the largest leaves
    and takes its parent (``stats['refine_reseeded']``); each upper centroid becomes the mean of the
    sample points under it."""
    if p.refine_iters <= 0:
        return
    progress = progress or (lambda *a, **k: None)
    leaves = res.centroids[-1].copy()
    parents = res.parents[-1].copy()
    k = len(leaves)
    progress("refine", 0, p.refine_iters)
    for it in range(p.refine_iters):
        ids, _ = nearest(x, leaves, p, "auto")
        sums, counts = _cluster_sums(x, ids, k)
        leaves = _means(sums, counts, leaves, p.spherical)
        res.stats["refine_reseeded"] += _reseed_empty(leaves, parents, counts, p.spherical)
        progress("refine", it + 1, p.refine_iters, (it + 1) * len(x))
    res.centroids[-1], res.parents[-1] = leaves, parents
    upper_means(res, sums, counts, p.spherical)


def upper_means(res: FitResult, sums: np.ndarray, counts: np.ndarray, spherical: bool) -> None:
    """Set every level above the leaves to the mean of the points under it, from the leaves' sums.

    Args:
        res: the fit; its last level holds the leaves and every ``parents`` link is final.
        sums: per-leaf float64 sums of the points.
        counts: per-leaf point counts.
        spherical: normalise the means.
    """
    for level in range(len(res.centroids) - 2, -1, -1):
        up = res.parents[level + 1]
        kp = len(res.centroids[level])
        sums, _ = _cluster_sums(sums, up, kp)
        counts = np.bincount(up, weights=counts, minlength=kp).astype(np.int64)
        res.centroids[level] = _means(sums, counts, res.centroids[level], spherical)
