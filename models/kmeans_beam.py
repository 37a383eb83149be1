"""Beam search through the cluster tree: keep the ``B`` nearest nodes per level, search their children.

Exact assignment compares every vector with every leaf (cost n·K·d); the beam compares it with the
K_0 level-0 centroids, then only with the children of the ``B`` nearest ones, level by level, and
returns the nearest leaf among the last candidates (cost about n·(K_0 + B·branching·levels)·d).
It is the tree analogue of FAISS ``IndexIVFFlat`` with ``nprobe = B`` (level-0 centroids as the
coarse quantizer), generalised to any depth. A beam at least as wide as every non-leaf level keeps
every node, so its candidates are all leaves: that case *is* the exact search and runs its code.

Candidates are scored per kept parent with one matmul over the rows that kept it (BLAS, not a
per-row gather; every parent's children are stored contiguously, so its centroids are a slice) and
merged into each row's running best ``B`` (the best one at the leaves). These matmuls are small
(rows × d × branching): a multi-threaded BLAS spends more time waking its threads than computing,
and on a loaded machine used 7× the CPU of one thread (BENCHMARKS.md, "Beam assignment at K =
65,536"). So BLAS runs single-threaded here and the worker's thread budget (``regionset.common.threads``)
goes to blocks of rows searched in parallel threads instead. The agreement with exact and the
inertia ratio are measured in BENCHMARKS.md (bench/scale.py) and checked on a sample of every
shard by the assign stage.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from regionset.common import threads as worker_threads

BATCH_ROWS = 16384
"""Rows per block (the per-parent loop runs once per block; blocks run in parallel threads)."""


def children_csr(parents: np.ndarray, num_parents: int) -> tuple[np.ndarray, np.ndarray]:
    """Children of every parent as CSR: (offsets (num_parents + 1,), child ids sorted by parent)."""
    order = np.argsort(parents, kind="stable").astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=num_parents))]).astype(np.int64)
    return offsets, order


@dataclass
class _Level:
    """One level below the root, children grouped by parent: ``cents[offsets[p]:offsets[p+1]]`` are
    the children of ``p``; ``ids`` maps that slot order back to the level's node ids."""

    offsets: np.ndarray
    ids: np.ndarray
    cents: np.ndarray
    norms: np.ndarray


def _scores(x: np.ndarray, c: np.ndarray, cn: np.ndarray) -> np.ndarray:
    """``|c|² − 2 x·c`` (the squared distance less ``|x|²``), float32."""
    s = x @ c.T
    s *= -2.0
    s += cn
    return s


def _top(scores: np.ndarray, b: int) -> np.ndarray:
    """Column ids of the ``b`` smallest scores of every row (all columns when there are fewer)."""
    if scores.shape[1] <= b:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    return np.argpartition(scores, b - 1, axis=1)[:, :b]


def _expand(x: np.ndarray, kept: np.ndarray, lv: _Level, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep`` best children of every row's kept parents.

    Each kept parent is scored with one matmul over the rows that kept it; its ``keep`` best
    children are merged into the row's running best (a row keeps a parent once, so the rows of one
    block are distinct). Returns (scores (n, keep) float32, +inf padded; ids (n, keep), -1 padded).
    """
    n, b = kept.shape
    best = np.full((n, keep), np.inf, np.float32)
    best_ids = np.full((n, keep), -1, np.int64)
    flat = kept.ravel()
    pair_order = np.argsort(flat, kind="stable")
    uniq, starts = np.unique(flat[pair_order], return_index=True)
    ends = np.append(starts[1:], len(flat))
    for p, lo, hi in zip(uniq.tolist(), starts.tolist(), ends.tolist()):
        if p < 0:  # a padded slot (fewer candidates than the beam): no children
            continue
        c_lo, c_hi = int(lv.offsets[p]), int(lv.offsets[p + 1])
        if c_hi == c_lo:
            continue
        rows = pair_order[lo:hi] // b
        s = _scores(x[rows], lv.cents[c_lo:c_hi], lv.norms[c_lo:c_hi])
        if keep == 1:  # the leaf level: only each row's best child so far
            arg = s.argmin(1)
            val = s[np.arange(len(rows)), arg]
            better = val < best[rows, 0]
            best[rows[better], 0] = val[better]
            best_ids[rows[better], 0] = lv.ids[c_lo + arg[better]]
            continue
        top = _top(s, keep)
        both = np.concatenate([best[rows], np.take_along_axis(s, top, 1)], 1)
        both_ids = np.concatenate([best_ids[rows], lv.ids[c_lo + top]], 1)
        pick = _top(both, keep)
        best[rows] = np.take_along_axis(both, pick, 1)
        best_ids[rows] = np.take_along_axis(both_ids, pick, 1)
    return best, best_ids


def _levels(centroids: list[np.ndarray], parents: list[np.ndarray]) -> list[_Level]:
    """Every level below the root with its children grouped by parent (a copy of the centroids)."""
    out = []
    for lv in range(1, len(centroids)):
        offsets, order = children_csr(np.asarray(parents[lv]), len(centroids[lv - 1]))
        cents = np.ascontiguousarray(centroids[lv][order], np.float32)
        out.append(_Level(offsets, order, cents, np.einsum("ij,ij->i", cents, cents)))
    return out


def _block(xb: np.ndarray, root: np.ndarray, root_norms: np.ndarray, levels: list[_Level],
           beam: int) -> tuple[np.ndarray, np.ndarray]:
    """(leaf ids, squared distances) of one block of rows."""
    s = _scores(xb, root, root_norms)
    ids = np.broadcast_to(np.arange(len(root)), s.shape)
    for i, lv in enumerate(levels):
        kept = np.take_along_axis(ids, _top(s, beam), 1)
        s, ids = _expand(xb, kept, lv, beam if i + 1 < len(levels) else 1)
    best = s.argmin(1)
    rows = np.arange(len(xb))
    return ids[rows, best], np.maximum(s[rows, best] + np.einsum("ij,ij->i", xb, xb), 0)


def beam_search(x: np.ndarray, centroids: list[np.ndarray], parents: list[np.ndarray],
                beam: int, batch_rows: int = BATCH_ROWS, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest leaf of every row found by a beam of width ``beam`` through the tree.

    Args:
        x: (n, d) float32 queries (already normalised in spherical mode).
        centroids: per level (K_i, d) float32, level 0 the coarsest.
        parents: per level (K_i,) parent ids at the level above.
        beam: nodes kept per level (>= 1).
        batch_rows: rows per block at most (smaller when that gives every thread a block).
        threads: blocks searched at once (default: the worker's budget, ``regionset.common.threads.current``);
            BLAS itself runs single-threaded meanwhile. The result does not depend on it.

    Returns:
        (leaf ids int64 (n,), squared distances float32 (n,)).
    """
    if beam < 1:
        raise ValueError(f"assign.beam: need a width of 1 or more, got {beam}")
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(x, np.float32)
    n = len(x)
    root = np.ascontiguousarray(centroids[0], np.float32)
    root_norms = np.einsum("ij,ij->i", root, root)
    levels = _levels(centroids, parents)
    leaf = np.zeros(n, np.int64)
    dist = np.zeros(n, np.float32)
    workers = max(1, threads if threads is not None else worker_threads.current())
    step = max(1, min(batch_rows, -(-n // workers)))

    def run(i: int) -> None:
        leaf[i:i + step], dist[i:i + step] = _block(x[i:i + step], root, root_norms, levels, beam)

    with threadpool_limits(1, user_api="blas"):
        if workers == 1 or n <= step:
            for i in range(0, n, step):
                run(i)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, range(0, n, step)))
    return leaf, dist


def covers_tree(sizes: list[int], beam: int) -> bool:
    """True when a beam of width ``beam`` keeps every node of every non-leaf level (= exact)."""
    return all(beam >= k for k in sizes[:-1])
