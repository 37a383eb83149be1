"""The per-parent fit (``kmeans.fit: per_parent``): level 0 on the driver, every subtree as a task.

1. A pass over the embedding priorities (``sample.row_priority``, bottom-k as in ``sample.py``)
   gives the thresholds of the level-0 sample (``max_points_per_centroid × K_0`` rows, what FAISS
   trains level 0 on) and of the full sample (``sample_size`` rows).
2. The driver reads the level-0 sample, fits level 0 (``fit_hierarchy`` with one level).
3. One streaming pass writes the full sample **partitioned by level-0 parent**: per embedding shard,
   ``WORK/part-<shard>/{x,pri,offsets}.npy`` sorted by (nearest level-0 centroid, priority), so a
   task reads only its parent's slice of each file (a seek on disk, a ranged read on an object store).
4. Every level-0 parent is fitted as an independent task (``executor.processes`` worker processes):
   its points sorted by priority, its children count from the driver (``allocate`` in proportion
   to the parents' sample sizes; deeper levels scaled alike), seeded inside the parent only (its
   own k-means++ or random pick: no level-wide k-means++ across parents), its own seed
   ``seed + 104729 × (parent + 1)``; the subtree's result is written to ``WORK/parent-<P>.npz``,
   which is the task's completion marker: a killed fit reruns only the parents without one.
5. Refinement is map-reduce: per parent, nearest leaf among all leaves and per-leaf float64 sums
   and counts; the driver adds them **in parent order** and updates the leaves (as ``tree.refine``).

So no process holds more than the level-0 sample, or one parent's points (plus the leaves during
refinement); the result depends only on the set of region ids, the config and the seed — not on
the worker count or the shard order. It differs from ``kmeans.fit: local`` (level-wide k-means++
over one in-memory sample), which stays the default. ``WORK`` is ``OUT/.kmeans_fit``.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common.files import load_npy, read_npy_rows, remove_tree, save_npy, write_atomic
from common.storage import RemotePath, as_path
from models.kmeans_index import l2_normalize, nearest_centroids
from pipelines.failpoints import failpoint
from pipelines.kmeans.sample import iter_embeddings, row_priority
from pipelines.kmeans.tree import (
    FitParams,
    FitResult,
    _cluster_sums,
    _means,
    _reseed_empty,
    allocate,
    fit_hierarchy,
    upper_means,
)

WORK = ".kmeans_fit"
PARENT_SEED = 104_729


def _bottom(out: Path, shards: list[int], sources: tuple[str, ...], seed: int, sizes: list[int]) -> tuple[list[int], int]:
    """Thresholds: the ``s``-th smallest priority for each ``s`` in ``sizes`` (uint64), rows seen."""
    keep = max(sizes)
    best = np.zeros(0, np.uint64)
    seen = 0
    for shard in shards:
        for ids, _ in iter_embeddings(out, [shard], sources):
            seen += len(ids)
            best = np.concatenate([best, row_priority(ids, seed)])
            if len(best) > 2 * keep:
                best = np.partition(best, keep - 1)[:keep]
    best = np.sort(best)[:keep]
    if not len(best):
        return [0 for _ in sizes], 0
    return [int(best[min(s, len(best)) - 1]) for s in sizes], seen


def _read(out: Path, shards: list[int], sources: tuple[str, ...], seed: int, limit: int,
          spherical: bool) -> tuple[np.ndarray, np.ndarray]:
    """(x, priorities) of the rows with priority <= ``limit``, sorted by priority."""
    xs, ps = [], []
    for shard in shards:
        for ids, x in iter_embeddings(out, [shard], sources):
            p = row_priority(ids, seed)
            m = p <= np.uint64(limit)
            xs.append(x[m])
            ps.append(p[m])
    x = np.concatenate(xs) if xs else np.zeros((0, 0), np.float32)
    p = np.concatenate(ps) if ps else np.zeros(0, np.uint64)
    order = np.argsort(p, kind="stable")
    x = x[order]
    return (l2_normalize(x) if spherical else x), p[order]


def _partition(out: Path, work: Path | RemotePath, shards: list[int], sources: tuple[str, ...], seed: int,
               limit: int, level0: np.ndarray, spherical: bool) -> None:
    """Write every shard's sample rows sorted by (level-0 parent, priority), with parent offsets.

    ``offsets.npy`` is written last: it commits the partition (no rename, so the same on object
    stores); a partition without it is rewritten, and never read.
    """
    k0 = len(level0)
    done = {p.name for p in committed_parts(work)}
    for shard in shards:
        part = work / f"part-{shard:05d}"
        if part.name in done:
            continue
        x, p = _read(out, [shard], sources, seed, limit, spherical)
        members = nearest_centroids(x, level0, "numpy")[0] if len(x) else np.zeros(0, np.int64)
        order = np.lexsort((p, members))
        save_npy(part / "x.npy", x[order] if len(x) else np.zeros((0, level0.shape[1]), np.float32))
        save_npy(part / "pri.npy", p[order])
        save_npy(part / "offsets.npy", np.concatenate([[0], np.cumsum(np.bincount(members, minlength=k0))]))


def committed_parts(work: Path | RemotePath) -> list[Path | RemotePath]:
    """The partitions of ``work`` whose ``offsets.npy`` (their commit) exists, in shard order (one listing)."""
    return sorted(f.parent for f in as_path(work).glob("part-*/offsets.npy"))


def parent_points(work: Path | RemotePath, parent: int) -> np.ndarray:
    """The sample points of one level-0 parent, from every partition, sorted by priority (only that
    parent's rows of each partition are read: a seek on disk, a ranged GET on an object store)."""
    xs, ps = [], []
    for part in committed_parts(work):
        off = load_npy(part / "offsets.npy")
        lo, hi = int(off[parent]), int(off[parent + 1])
        if hi > lo:
            xs.append(read_npy_rows(part / "x.npy", lo, hi))
            ps.append(read_npy_rows(part / "pri.npy", lo, hi))
    if not xs:
        return np.zeros((0, 0), np.float32)
    p = np.concatenate(ps)
    return np.concatenate(xs)[np.argsort(p, kind="stable")]


def _fit_parent(work: str, parent: int, totals: list[int], params: FitParams, threads: int) -> None:
    """Task: fit the subtree of one level-0 parent and write ``parent-<P>.npz`` (its marker)."""
    import faiss

    faiss.omp_set_num_threads(threads)
    x = parent_points(as_path(work), parent)
    p = replace(params, seed=params.seed + PARENT_SEED * (parent + 1), refine_iters=0)
    res = fit_hierarchy(x, totals, p) if len(x) else FitResult()
    arrays = {f"c{i}": c for i, c in enumerate(res.centroids)} | {f"p{i}": q for i, q in enumerate(res.parents)}
    buf = io.BytesIO()
    np.savez(buf, stats=json.dumps(dict(res.stats)), **arrays)
    write_atomic(as_path(work) / f"parent-{parent:07d}.npz", buf.getvalue())
    failpoint("kmeans:parent_fitted")


def _refine_map(work: str, parent: int, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Task: nearest leaf of the parent's points; (leaf ids hit, their float64 sums, counts, Σ dist)."""
    x = parent_points(as_path(work), parent)
    if not len(x):
        return np.zeros(0, np.int64), np.zeros((0, leaves.shape[1])), np.zeros(0, np.int64), 0.0
    ids, dist = nearest_centroids(x, leaves, "numpy")
    sums, counts = _cluster_sums(x, ids, len(leaves))
    nz = np.flatnonzero(counts)
    return nz, sums[nz], counts[nz], float(dist.sum(dtype=np.float64))


def _pool(processes: int) -> ProcessPoolExecutor | None:
    return ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) if processes > 1 else None


def _map(pool: ProcessPoolExecutor | None, fn: Any, jobs: list[tuple]) -> list[Any]:
    """``fn(*job)`` for every job, results in job order (in-process without a pool)."""
    if pool is None:
        return [fn(*job) for job in jobs]
    return [f.result() for f in [pool.submit(fn, *job) for job in jobs]]


def fit_per_parent(out: Path, shards: list[int], sources: tuple[str, ...], sample_size: int,
                   totals: Callable[[int], list[int]], p: FitParams, signature: dict[str, Any], processes: int = 1) -> dict[str, Any]:
    """Fit the tree parent by parent (module docstring); return its arrays and fit statistics.

    Args:
        out: the output folder (``OUT/.kmeans_fit`` holds the partitions and markers until done).
        shards: embedding shards to sample.
        sources: region sources clustered.
        sample_size: rows of the full sample.
        totals: clusters wanted per level, coarsest first, given the sample rows (``level_totals``).
        p: k-means parameters.
        signature: what decides the tree; a work folder fitted under another one is discarded.
        processes: worker processes for the per-parent fits and the refinement maps.

    Returns:
        ``result`` (FitResult), ``sample_rows``, ``rows_seen``, ``inertia``, ``leaf_sizes``,
        ``parents_refitted``.
    """
    out = as_path(out)
    work = out / WORK
    sig = json.dumps({"signature": signature, "shards": sorted(shards)}, sort_keys=True)
    if (work / "signature.json").exists() and (work / "signature.json").read_text() != sig:
        remove_tree(work)
    write_atomic(work / "signature.json", sig.encode())
    _, seen = _bottom(out, shards, sources, p.seed, [1])
    if seen == 0:
        raise ValueError("fit_kmeans: no embeddings to fit (is the embed step done for the chosen sources?)")
    want = totals(min(sample_size, seen))
    n0 = min(sample_size, p.max_points_per_centroid * want[0])
    (t0, t_all), _ = _bottom(out, shards, sources, p.seed, [n0, sample_size])
    totals = want  # type: ignore[assignment]
    if (work / "level0.npy").exists():
        level0 = load_npy(work / "level0.npy")
    else:
        x0, _ = _read(out, shards, sources, p.seed, t0, p.spherical)
        level0 = fit_hierarchy(x0, totals[:1], replace(p, refine_iters=0)).centroids[0]
        del x0
        save_npy(work / "level0.npy", level0)
    _partition(out, work, sorted(shards), sources, p.seed, t_all, level0, p.spherical)
    offs = [load_npy(part / "offsets.npy") for part in committed_parts(work)]
    sizes = np.sum([np.diff(o) for o in offs], axis=0)
    weights = sizes.astype(np.float64)
    k1 = allocate(np.maximum(weights, 1e-9), totals[1], np.maximum(sizes, 1)) if len(totals) > 1 else None
    fitted = {f.name for f in work.glob("parent-*.npz")}  # one listing: the parents' markers
    todo = [j for j in range(len(level0)) if sizes[j] and f"parent-{j:07d}.npz" not in fitted]
    res = FitResult(centroids=[level0], parents=[np.full(len(level0), -1, np.int32)])
    pool = _pool(processes)
    try:
        if k1 is not None:
            threads = 1 if processes > 1 else _threads()
            jobs = [(str(work), j, [max(1, int(k1[j]) * t // totals[1]) for t in totals[1:]], p, threads)
                    for j in todo]
            _map(pool, _fit_parent, jobs)
            _assemble(work, res, [j for j in range(len(level0)) if sizes[j]], len(totals))
        inertia, leaf_sizes = refine_parents(str(work), res, p, [j for j in range(len(level0)) if sizes[j]], pool)
    finally:
        if pool is not None:
            pool.shutdown()
    return {"result": res, "sample_rows": int(sizes.sum()), "rows_seen": seen, "parents_refitted": len(todo),
            "inertia": inertia / max(int(sizes.sum()), 1), "leaf_sizes": leaf_sizes}


def _threads() -> int:
    import faiss

    return faiss.omp_get_max_threads()


def _assemble(work: Path, res: FitResult, parents: list[int], depth: int) -> None:
    """Join the subtrees in parent order: global ids per level, parent links shifted by the offsets."""
    cents: list[list[np.ndarray]] = [[] for _ in range(depth)]
    links: list[list[np.ndarray]] = [[] for _ in range(depth)]
    count = [0] * depth
    for j in parents:
        base = list(count)
        with np.load(io.BytesIO((work / f"parent-{j:07d}.npz").read_bytes())) as z:
            res.stats.update(json.loads(str(z["stats"])))
            for lv in range(1, depth):
                c, q = z[f"c{lv - 1}"], z[f"p{lv - 1}"]
                cents[lv].append(c)
                links[lv].append(np.full(len(c), j, np.int32) if lv == 1 else q + base[lv - 1])
                count[lv] += len(c)
    for lv in range(1, depth):
        res.centroids.append(np.concatenate(cents[lv]).astype(np.float32))
        res.parents.append(np.concatenate(links[lv]).astype(np.int32))


def refine_parents(work: str, res: FitResult, p: FitParams, parents: list[int],
                   pool: ProcessPoolExecutor | None) -> tuple[float, np.ndarray]:
    """Global Lloyd iterations as map-reduce over the parents (``tree.refine``'s update), then one
    pass with the final leaves; returns (summed squared distances, leaf sizes) of that pass."""
    leaves, links = res.centroids[-1].copy(), res.parents[-1].copy()
    k, d = leaves.shape
    for it in range(p.refine_iters + 1):
        sums, counts, total = np.zeros((k, d)), np.zeros(k, np.int64), 0.0
        for nz, s, c, dist in _map(pool, _refine_map, [(work, j, leaves) for j in parents]):
            sums[nz] += s
            counts[nz] += c
            total += dist
        if it == p.refine_iters:
            break
        leaves = _means(sums, counts, leaves, p.spherical)
        res.stats["refine_reseeded"] += _reseed_empty(leaves, links, counts, p.spherical)
        last_sums, last_counts = sums, counts
    if p.refine_iters and len(res.centroids) > 1:
        res.centroids[-1], res.parents[-1] = leaves, links
        upper_means(res, last_sums, last_counts, p.spherical)
    elif p.refine_iters:
        res.centroids[-1] = leaves
    return total, counts
