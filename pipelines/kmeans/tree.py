"""Hierarchical k-means on an in-memory sample, with FAISS (or torch, ``backend: torch``:
``regionset.pipelines.kmeans.lloyd_torch``) doing each k-means.

Level 0 is one k-means over the whole sample. Every later level splits each parent cell (the
sample points whose exact nearest centroid at the level above is that parent) with its own
k-means. With ``seeding: kmeans++`` (default) one greedy k-means++ pass over the whole level
(``regionset.pipelines.kmeans.seeding.level_seeds``) picks every child's seed, and so how many children each
parent gets; with ``seeding: random`` the level's total is shared out **in proportion to each
parent's size** (or its sum of squared distances, ``allocate_by: sse``) and FAISS draws the seeds
at random. Equal splits cost +14 % inertia over flat k-means on clustered data (docs/kmeans-labels.md), random
seeds 1.2–1.4× the partition SSE of k-means++ when K is close to the true cluster count (BENCHMARKS.md).
Points are later routed to their exact
nearest leaf (``regionset.models.kmeans_index``), never through the coarse cell.

Degenerate cases have fixed outcomes, counted in ``stats``:
- a parent with fewer distinct points than its allocation gets one child per distinct point
  (``capped_parents``), and the level total shrinks accordingly (``clusters_short``);
- duplicate vectors count once for that cap;
- children of a FAISS fit that get no point of their parent in the exact assignment (empty or
  duplicate centroids) are dropped before ids are given (``empty_dropped``).
Each k-means starts from ``seeding`` (``regionset.pipelines.kmeans.seeding``: greedy k-means++ by default,
or FAISS's uniform random pick). FAISS trains each k-means on at most ``max_points_per_centroid × k`` points (it subsamples the
rest silently); the cells and sizes here always come from an exact pass over every sample point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from regionset.models.kmeans_index import l2_normalize
from regionset.pipelines.kmeans.params import FitParams, FitResult, ProgressFn
from regionset.pipelines.kmeans.refine import refine
from regionset.pipelines.kmeans.search import nearest
from regionset.pipelines.kmeans.seeding import level_seeds


def _no_progress(phase: str, done: int, total: int, rows: int = 0) -> None:
    return None


def allocate(weights: np.ndarray, total: int, caps: np.ndarray) -> np.ndarray:
    """Children per parent: ∝ ``weights``, each in ``[1, cap]``, summing to ``min(total, Σcaps)``.

    Args:
        weights: non-negative weight of each parent (its size or spread).
        total: children wanted at the level.
        caps: most children each parent can hold (its count of distinct points, >= 1).
    """
    caps = np.asarray(caps, np.int64)
    total = int(min(total, caps.sum()))
    w = np.asarray(weights, np.float64) + 1e-12
    ideal = total * w / w.sum()
    k = np.clip(np.floor(ideal).astype(np.int64), 1, caps)
    while (diff := total - int(k.sum())) != 0:
        if diff > 0:  # give one more to the parents furthest below their ideal share
            ok = np.flatnonzero(k < caps)
            pri = ideal[ok] - k[ok]
        else:  # take one back from those furthest above it
            ok = np.flatnonzero(k > 1)
            pri = k[ok] - ideal[ok]
        pick = ok[np.argsort(-pri, kind="stable")[:abs(diff)]]
        k[pick] += 1 if diff > 0 else -1
    return k


def _row_keys(x: np.ndarray, seed: int, block_rows: int = 4096) -> np.ndarray:
    """One float64 per row, equal for duplicate rows and (almost surely) distinct otherwise (only
    which rows share a key is used). Each row's key is computed on its own, ``block_rows`` rows
    widened at a time: no float64 copy of ``x``, and a key does not depend on the row's position."""
    r = np.random.default_rng(seed).standard_normal(x.shape[1])
    keys = np.empty(len(x), np.float64)
    for lo in range(0, len(x), block_rows):
        np.sum(x[lo:lo + block_rows] * r, axis=1, out=keys[lo:lo + block_rows])
    return keys


def _distinct_per_parent(members: np.ndarray, keys: np.ndarray, parents: int) -> np.ndarray:
    """Number of distinct rows in each parent cell."""
    order = np.lexsort((keys, members))
    m, k = members[order], keys[order]
    new = np.ones(len(m), bool)
    new[1:] = (m[1:] != m[:-1]) | (k[1:] != k[:-1])
    return np.bincount(m[new], minlength=parents)


def _kmeans(x: np.ndarray, k: int, seed: int, p: FitParams, init: np.ndarray | None) -> np.ndarray:
    if k == 1:
        c = x.mean(0, keepdims=True)
        return l2_normalize(c) if p.spherical else c.astype(np.float32)
    if p.backend == "torch":
        from regionset.pipelines.kmeans.lloyd_torch import lloyd

        return lloyd(x, k, p.niter, seed, p.spherical, p.max_points_per_centroid, init, p.device)
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=p.niter, seed=seed, spherical=p.spherical, gpu=p.gpu,
                      max_points_per_centroid=p.max_points_per_centroid, min_points_per_centroid=1,
                      verbose=False)
    km.train(np.ascontiguousarray(x, np.float32),
             init_centroids=None if init is None else np.ascontiguousarray(init, np.float32))
    return km.centroids.copy()


def _split(x: np.ndarray, keys: np.ndarray, k: int, seed: int, p: FitParams,
           stats: Counter, init: np.ndarray | None = None) -> np.ndarray:
    """The children of one parent cell (rows ``x``); ``k`` is already capped to distinct rows;
    ``init``: k-means++ seeds (None: FAISS draws ``k`` points at random)."""
    uniq, first = np.unique(keys, return_index=True)
    if k >= len(uniq):  # one child per distinct point: exact, no k-means needed
        c = x[np.sort(first)]
        return l2_normalize(c) if p.spherical else c.copy()
    c = _kmeans(x, k, seed, p, init)
    ids, _ = nearest(x, c, p)
    used = np.bincount(ids, minlength=len(c)) > 0
    stats["empty_dropped"] += int((~used).sum())
    return c[used]


Job = tuple[np.ndarray, int, int, np.ndarray | None]
"""One parent to split: its rows, children wanted, k-means seed, initial centroids or None."""


def _rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]``, as a view when ``rows`` is a run of consecutive rows (a tree's root: all rows)."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
        return x[rows[0]:rows[-1] + 1]
    return x[rows]


def _split_all(x: np.ndarray, keys: np.ndarray, jobs: list[Job], p: FitParams,
               stats: Counter, tick: Callable[[int], None]) -> list[np.ndarray]:
    """Split every parent cell. On CPU, many small parents run side by side with one FAISS (or
    torch) thread each: a 2-thread OpenMP team per tiny k-means spends most of its time in
    barriers, worst on a loaded machine (measured 2.6 s vs 38 s for 32 parents × 32 children,
    50k × 64, load 13). Each parent has its own seed, so the result does not depend on the
    scheduling. On a GPU (FAISS's or torch's) the parents run one after another."""
    out: list[np.ndarray] = []
    get_threads, set_threads = _thread_switch(p)
    threads = get_threads()
    if p.gpu or p.device != "cpu" or len(jobs) == 1 or threads == 1:
        for rows, k, seed, init in jobs:
            out.append(_split(_rows(x, rows), keys[rows], k, seed, p, stats, init))
            tick(len(out))
        return out
    counts: list[Counter] = [Counter() for _ in jobs]
    set_threads(1)
    try:
        with ThreadPoolExecutor(threads, initializer=set_threads, initargs=(1,)) as pool:
            for c in pool.map(lambda i: _split(x[jobs[i][0]], keys[jobs[i][0]], jobs[i][1], jobs[i][2], p,
                                               counts[i], jobs[i][3]), range(len(jobs))):
                out.append(c)
                tick(len(out))
    finally:
        set_threads(threads)
    for c in counts:
        stats.update(c)
    return out


def _thread_switch(p: FitParams) -> tuple[Callable[[], int], Callable[[int], None]]:
    """(get, set) of the thread count of the library that runs the fit's k-means on the CPU: FAISS's
    OpenMP threads, or torch's intra-op threads (process-wide, like OpenMP's; measured on the loaded
    2-core machine: 9.5 s with 2 torch threads vs 0.4 s with 1 for a 5,000-point three-level tree)."""
    if p.backend == "torch":
        import torch

        return torch.get_num_threads, torch.set_num_threads
    import faiss

    return faiss.omp_get_max_threads, faiss.omp_set_num_threads


def seeds_of_level(x: np.ndarray, members: np.ndarray, parents: int, want: int, seed: int,
                   p: FitParams) -> list[np.ndarray]:
    """``seeding.level_seeds`` where the fit runs: torch on a GPU for ``backend: torch`` on CUDA
    (``seeding_torch``: the same seeds), else numpy (on the CPU it beats torch's many small kernels)."""
    if p.backend == "torch" and p.device != "cpu":
        from regionset.pipelines.kmeans.seeding_torch import level_seeds_torch

        return level_seeds_torch(x, members, parents, want, seed, p.max_points_per_centroid, device=p.device)
    return level_seeds(x, members, parents, want, seed, p.max_points_per_centroid)


def fit_hierarchy(x: np.ndarray, totals: list[int], p: FitParams,
                  progress: ProgressFn | None = None) -> FitResult:
    """Fit the cluster tree on sample ``x`` (already L2-normalised in spherical mode).

    Args:
        x: (n, d) float32 sample.
        totals: wanted number of clusters at each level, coarsest first (non-decreasing).
        p: k-means parameters.
        progress: called with (``level i``, parents split, parents) and (``refine``, iterations
            done, iterations, rows assigned).
    """
    progress = progress or _no_progress
    res = FitResult()
    n = len(x)
    if n == 0:
        raise ValueError("fit_kmeans: no embeddings to fit (is the embed step done for the chosen sources?)")
    keys = _row_keys(x, p.seed)
    members = np.zeros(n, np.int64)  # every point starts in one virtual root
    parent_count = 1
    for level, want in enumerate(totals):
        sizes = np.bincount(members, minlength=parent_count)
        caps = _distinct_per_parent(members, keys, parent_count)
        if p.allocate_by == "sse" and level:
            prev = res.centroids[-1]
            sse = np.bincount(members, weights=((x - prev[members]) ** 2).sum(1), minlength=parent_count)
            weights = sse
        else:
            weights = sizes.astype(np.float64)
        seeds: list[np.ndarray | None] = [None] * parent_count
        if p.seeding == "kmeans++":  # the level-wide k-means++ also decides the children per parent
            seeded = seeds_of_level(x, members, parent_count, want, p.seed + 7919 * level, p)
            k = np.array([len(s) for s in seeded], np.int64)
            seeds = [x[s] for s in seeded]
        elif p.seeding == "random":
            k = allocate(weights, want, caps)
        else:
            raise ValueError(f"kmeans.seeding: expected random or kmeans++, got {p.seeding!r}")
        res.stats["capped_parents"] += int(((k == caps) & (caps < want * weights / weights.sum())).sum())
        order = np.argsort(members, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        jobs = [(order[bounds[j]:bounds[j + 1]], int(k[j]), p.seed + 1009 * level + j, seeds[j])
                for j in range(parent_count)]
        cents = _split_all(x, keys, jobs, p, res.stats,
                           lambda done, lv=level, total=parent_count: progress(f"level {lv}", done, total))
        pars = [np.full(len(c), j if level else -1, np.int32) for j, c in enumerate(cents)]
        c_all = np.concatenate(cents).astype(np.float32)
        res.stats["clusters_short"] += want - len(c_all)
        res.centroids.append(c_all)
        res.parents.append(np.concatenate(pars))
        if level + 1 < len(totals):
            # a cell's members are the points nearest its centroid *among all centroids of the level*
            members, _ = nearest(x, c_all, p, "auto")
            parent_count = len(c_all)
    refine(x, res, p, progress)
    return res
