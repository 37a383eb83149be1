"""Initial centroids for each k-means of the tree: FAISS's uniform random pick, or greedy k-means++.

FAISS seeds by sampling ``k`` points uniformly, so a big cluster gets several seeds and a small one
often none; Lloyd iterations rarely move a seed across clusters, and neither the per-parent splits
nor the global refinement recover (BENCHMARKS.md: at K ≈ the number of true clusters, partition SSE was
1.43× a k-means++ reference). Greedy k-means++ (Arthur & Vassilvitskii 2007, with ``2 + ln k``
local trials as in scikit-learn) draws each next seed with probability ∝ its squared distance to
the seeds so far and keeps the trial that lowers the potential most, so a far, tiny cluster gets a
seed of its own.

Seeding a whole level at once (``level_seeds``) also decides how many children each parent gets,
which matters as much as the seeds: allocating children in proportion to cell size starves cells
of many small clusters. The greedy pass runs on at most ``max_points_per_centroid × k`` points of
the level (a uniform subsample drawn with the fit's seed: the points FAISS's Lloyd iterations
would train on; 64 per centroid instead cost 1.053× vs 1.018× the reference's SSE on the issue-25
Zipf case), and each candidate's distances are
computed to its own parent cell only, so it costs ``k × trials × (points per cell) × d``, about a
third of the per-parent Lloyd iterations. Everything is drawn from ``seed``: same points and seed,
same seeds — the sample is ordered by region-id hash, so this is independent of shard order.
"""

from __future__ import annotations

import math

import numpy as np

GEMV_ROWS = 2048
"""Rows per matrix-vector product: OpenBLAS threads larger ones, which cost 45x more on a busy
2-core machine (16,000 × 64: 3.8 ms vs 84 µs CPU in 2,048-row blocks)."""
MIN_TRIALS = 8
"""At least this many candidates per seed: 2 + ln k alone leaves a small fit to chance."""


def _sq_dist(rows: np.ndarray, row_norms: np.ndarray, x: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    """(len(rows), len(x)) squared L2 distances; those within float32 rounding of 0 (a point and
    itself, or a duplicate) are exactly 0, so a fully seeded cell has no potential left."""
    d = rows @ x.T
    d *= -2.0
    d += row_norms[:, None]
    d += x_norms[None, :]
    d[d < 1e-5 * (row_norms[:, None] + x_norms[None, :])] = 0.0
    return d


def kmeanspp(x: np.ndarray, k: int, seed: int, trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeds: ``k`` rows of ``x`` (float32), drawn deterministically from ``seed``.

    Args:
        x: (n, d) points (n >= 1).
        k: seeds wanted (at most the number of distinct rows for all seeds to differ).
        seed: the random seed.
        trials: candidates tried per seed (default ``2 + floor(ln k)``).
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, np.float32)
    n = len(x)
    trials = trials or 2 + int(math.log(max(k, 1)))
    norms = np.einsum("ij,ij->i", x, x)
    first = int(rng.integers(n))
    chosen = [first]
    pot = _sq_dist(x[first:first + 1], norms[first:first + 1], x, norms)[0].astype(np.float64)
    for _ in range(1, k):
        total = pot.sum()
        if total <= 0:  # every point already coincides with a seed: pad with unused rows
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(rest, min(k - len(chosen), len(rest)), replace=False).tolist())
            break
        cand = np.searchsorted(np.cumsum(pot), rng.random(trials) * total, side="right")
        cand = np.unique(np.minimum(cand, n - 1))
        d = _sq_dist(x[cand], norms[cand], x, norms)
        np.minimum(d, pot[None, :].astype(np.float32), out=d)
        best = int(np.argmin(d.sum(1, dtype=np.float64)))
        chosen.append(int(cand[best]))
        pot = d[best].astype(np.float64)
    return x[np.asarray(chosen[:k])].copy()


def level_seeds(x: np.ndarray, members: np.ndarray, parents: int, want: int, seed: int,
                points_per_centroid: int = 256, trials: int | None = None) -> list[np.ndarray]:
    """Greedy k-means++ over a whole level, the parent cells used only to keep it cheap.

    Each non-empty cell first gets one seed, its point nearest the cell mean (every parent keeps a
    child; a random point would count a tight cell's spread twice and waste seeds on it); then each next seed is drawn over **all** cells with probability ∝ the squared distance
    to the nearest seed of the point's own cell, the best of ``trials`` candidates (largest drop of
    the potential) is kept, and only that cell's distances are updated. So the number of children
    of each parent comes out of the potential — a cell of many small, far-apart clusters gets many
    children, one tight big cluster few — instead of being fixed in advance by size.

    Args:
        x: (n, d) float32 sample (L2-normalised in spherical mode).
        members: (n,) parent cell of every row (all zeros for level 0).
        parents: number of parent cells.
        want: seeds wanted at the level (fewer when the points run out of distinct values).
        seed: the random seed.
        points_per_centroid: the pass sees at most ``points_per_centroid × want`` rows (a uniform
            subsample plus one row per cell), as FAISS trains on at most that many.
        trials: candidates per seed (default ``max(MIN_TRIALS, 2 + floor(ln want))``).

    Returns:
        per parent, the row ids of ``x`` chosen as its seeds (empty for a cell with no point).
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    trials = trials or max(MIN_TRIALS, 2 + int(math.log(max(want, 1))))
    rows = np.arange(n)
    if n > points_per_centroid * want:  # a uniform subsample, plus one row of every cell
        rows = rng.choice(n, points_per_centroid * want, replace=False)
        _, first = np.unique(members, return_index=True)
        rows = np.union1d(rows, first)
    rows = rows[np.argsort(members[rows], kind="stable")]
    xs = np.ascontiguousarray(x[rows], np.float32)
    norms = np.einsum("ij,ij->i", xs, xs)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(members[rows], minlength=parents))])
    pot = np.zeros(len(rows))
    cell_pot = np.zeros(parents)
    chosen: list[list[int]] = [[] for _ in range(parents)]

    def dist(i: int, p: int) -> np.ndarray:
        lo, hi = bounds[p], bounds[p + 1]
        dot = np.empty(hi - lo, np.float32)
        for j in range(lo, hi, GEMV_ROWS):
            np.dot(xs[j:min(j + GEMV_ROWS, hi)], xs[i], out=dot[j - lo:min(j + GEMV_ROWS, hi) - lo])
        d = (norms[lo:hi] + norms[i]) - 2.0 * dot
        d[d < 1e-5 * (norms[lo:hi] + norms[i])] = 0.0
        return d.astype(np.float64)

    for p in range(parents):
        lo, hi = bounds[p], bounds[p + 1]
        if hi > lo:  # the point nearest the cell's mean: a random one would double a tight cell's potential
            mean = xs[lo:hi].mean(0, dtype=np.float64)
            i = int(lo + np.argmin(((xs[lo:hi] - mean) ** 2).sum(1)))
            chosen[p].append(i)
            pot[lo:hi] = dist(i, p)
            cell_pot[p] = pot[lo:hi].sum()
    for _ in range(want - sum(map(len, chosen))):
        total = cell_pot.sum()
        if total <= 0:  # every remaining point coincides with a seed
            break
        cells = np.minimum(np.searchsorted(np.cumsum(cell_pot), rng.random(trials) * total, side="right"),
                           parents - 1)
        best = (-1.0, -1, -1, None)
        for p, u in zip(cells.tolist(), rng.random(trials).tolist()):
            lo, hi = bounds[p], bounds[p + 1]
            if cell_pot[p] <= 0:
                continue
            i = int(lo + min(np.searchsorted(np.cumsum(pot[lo:hi]), u * cell_pot[p], side="right"), hi - lo - 1))
            new = np.minimum(pot[lo:hi], dist(i, p))
            gain = cell_pot[p] - new.sum()
            if gain > best[0]:
                best = (gain, i, p, new)
        _, i, p, new = best
        if i < 0:
            break
        chosen[p].append(i)
        pot[bounds[p]:bounds[p + 1]] = new
        cell_pot[p] = new.sum()
    return [rows[np.asarray(c, np.int64)] for c in chosen]
