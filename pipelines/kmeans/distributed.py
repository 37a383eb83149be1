"""The per-parent fit (``kmeans.fit: per_parent``): level 0 on the driver, every subtree as a task.

1. A pass over the embedding priorities (``sample.row_priority``, bottom-k as in ``sample.py``)
   gives the thresholds of the level-0 sample (``max_points_per_centroid × K_0`` rows, what FAISS
   trains level 0 on) and of the full sample (``sample_size`` rows).
2. The driver reads the level-0 sample, fits level 0 (``fit_hierarchy`` with one level).
3. One streaming pass writes the full sample **partitioned by level-0 parent**: per embedding shard,
   ``WORK/part-<shard>/{x,pri,offsets}.npy`` sorted by (nearest level-0 centroid, priority), so a
   task reads only its parent's slice of each file (a seek on disk, a ranged read on an object store).
4. Every level-0 parent is fitted as an independent task on the build's executor
   (``Executor.run_calls``: local worker processes, Ray tasks or Spark partitions):
   its points sorted by priority, its children count from the driver (``allocate`` in proportion
   to the parents' sample sizes; deeper levels scaled alike), seeded inside the parent only (its
   own k-means++ or random pick: no level-wide k-means++ across parents), its own seed
   ``seed + 104729 × (parent + 1)``; the subtree's result is written to ``WORK/parent-<P>.npz``,
   which is the task's completion marker: a killed fit reruns only the parents without one.
5. Refinement is map-reduce on the same executor: per parent, nearest leaf among all leaves and
   per-leaf float64 sums and counts; the driver adds them **in parent order** and updates the
   leaves (as ``refine.refine``).

So no process holds more than the level-0 sample, or one parent's points (plus the leaves during
refinement); the result depends only on the set of region ids, the config and the seed — not on
the executor, the worker count or the shard order (tests/pipelines/test_kmeans_per_parent_parity.py). It differs from ``kmeans.fit: local`` (level-wide k-means++
over one in-memory sample; docs/kmeans-labels.md "Per-parent fit"), which ``fit: auto`` picks for small samples (``fit_choice``). ``WORK`` is ``OUT/.kmeans_fit``.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regionset.common.files import load_npy, remove_tree, save_npy, write_atomic
from regionset.common.memory import release_memory
from regionset.common.storage import RemotePath, as_path
from regionset.models.kmeans_index import nearest_centroids
from regionset.models.registry import executor_gpus
from regionset.pipelines.core.failpoints import failpoint
from regionset.pipelines.core.fence import check_commit
from regionset.pipelines.core.output import Output
from regionset.pipelines.kmeans.params import FitParams, FitResult
from regionset.pipelines.kmeans.partition import (
    committed_parts,
    parent_points,
    partition,
    read_sample,
    thresholds,
)
from regionset.pipelines.kmeans.refine import _cluster_sums, _means, _reseed_empty, upper_means
from regionset.pipelines.kmeans.search import nearest
from regionset.pipelines.kmeans.tree import allocate, fit_hierarchy, seeds_of_level

if TYPE_CHECKING:
    from regionset.pipelines.executors.base import Executor

WORK = ".kmeans_fit"
PARENT_SEED = 104_729
LAYOUT = 2  # of the work folder (2: children.npy); a folder of another layout is refitted from scratch


def _marker(work: Path | RemotePath, parent: int) -> Path | RemotePath:
    return work / f"parent-{parent:07d}.npz"


def fit_parent(work: str, parent: int, totals: list[int], params: FitParams) -> None:
    """Task: fit the subtree of one level-0 parent and write ``parent-<P>.npz`` (its marker).

    Args:
        work: the work folder (absolute: the task may run on another process or node).
        parent: the level-0 parent.
        totals: clusters wanted under it per level below level 0.
        params: k-means parameters (the parent's seed is derived here).
    """
    x = parent_points(as_path(work), parent)
    # The driver decides GPU use from its own GPUs; a Ray/Spark task given none uses the CPU (issue 32).
    p = replace(params, seed=params.seed + PARENT_SEED * (parent + 1), refine_iters=0,
                gpu=params.gpu and executor_gpus() != 0)
    res = fit_hierarchy(x, totals, p) if len(x) else FitResult()
    arrays = {f"c{i}": c for i, c in enumerate(res.centroids)} | {f"p{i}": q for i, q in enumerate(res.parents)}
    buf = io.BytesIO()
    np.savez(buf, stats=json.dumps(dict(res.stats)), **arrays)
    check_commit(_marker(as_path(work), parent))  # checked where this process has the build's fence armed
    write_atomic(_marker(as_path(work), parent), buf.getvalue())  # the parent's commit: one write
    del x, res, arrays, buf
    release_memory()  # the next parent (in this worker, or in the driver with one process) starts lean
    failpoint("kmeans:parent_fitted")


_LEAVES: dict[str, np.ndarray] = {}  # in a worker: the current iteration's leaves, read once


def _leaves(path: str) -> np.ndarray:
    """The leaves file of one refinement iteration, read once per worker (not shipped per task)."""
    if path not in _LEAVES:
        _LEAVES.clear()
        _LEAVES[path] = load_npy(as_path(path))
    return _LEAVES[path]


def refine_map(work: str, parent: int, leaves_path: str, backend: str = "numpy",
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Task: nearest leaf of the parent's points; (leaf ids hit, their float64 sums, counts, Σ dist).

    Args:
        work: the work folder.
        parent: the level-0 parent whose points are read.
        leaves_path: the iteration's leaf centroids (``WORK/leaves-<it>-<digest>.npy``).
        backend: the nearest-leaf search (``auto`` when the fit uses GPUs: FAISS on every GPU the
            worker sees, as the in-driver refinement does; ``torch``: ``kmeans.backend: torch``).
        device: the torch backend's device (``cpu``, or ``cuda``: the worker's GPU).
    """
    leaves = _leaves(leaves_path)
    x = parent_points(as_path(work), parent)
    if not len(x):
        return np.zeros(0, np.int64), np.zeros((0, leaves.shape[1])), np.zeros(0, np.int64), 0.0
    ids, dist = nearest(x, leaves, FitParams(backend="torch", device=device)) if backend == "torch" \
        else nearest_centroids(x, leaves, backend)  # type: ignore[arg-type]
    sums, counts = _cluster_sums(x, ids, len(leaves))
    del x, ids
    nz = np.flatnonzero(counts)
    got = nz, sums[nz], counts[nz], float(dist.sum(dtype=np.float64))
    del sums, dist
    release_memory()
    return got


def _children(x0: np.ndarray, level0: np.ndarray, want: list[int], p: FitParams) -> np.ndarray:
    """Level-1 children per level-0 parent from a level-wide k-means++ pass over the level-0 sample
    (``seeding.level_seeds``, as the in-driver fit decides them); empty with ``seeding: random``
    (then ``allocate`` shares them by sample size) or a one-level tree."""
    if len(want) < 2 or p.seeding != "kmeans++":
        return np.zeros(0, np.int64)
    members, _ = nearest_centroids(x0, level0, "numpy")
    seeded = seeds_of_level(x0, members, len(level0), want[1], p.seed + 7919, p)
    return np.maximum(1, np.array([len(s) for s in seeded], np.int64))


def _in_process() -> Executor:
    from regionset.pipelines.executors.local import LocalExecutor

    return LocalExecutor(1, show_progress=False)


def fit_per_parent(out: Output, shards: list[int], sources: tuple[str, ...], sample_size: int,
                   totals: Callable[[int], list[int]], p: FitParams, signature: dict[str, Any],
                   executor: Executor | None = None) -> dict[str, Any]:
    """Fit the tree parent by parent (module docstring); return its arrays and fit statistics.

    Args:
        out: the output folder (``OUT/.kmeans_fit`` holds the partitions and markers until done).
        shards: embedding shards to sample.
        sources: region sources clustered.
        sample_size: rows of the full sample.
        totals: clusters wanted per level, coarsest first, given the sample rows (``level_totals``).
        p: k-means parameters.
        signature: what decides the tree; a work folder fitted under another one is discarded.
        executor: runs the per-parent fits and refinement maps (``run_calls``); default in-process.

    Returns:
        ``result`` (FitResult), ``sample_rows``, ``rows_seen``, ``inertia``, ``leaf_sizes``,
        ``parents_refitted``.
    """
    executor = executor or _in_process()
    work = Output.of(out) / WORK  # absolute (an Output is): tasks may run in other processes or nodes
    sig = json.dumps({"signature": signature, "shards": sorted(shards), "layout": LAYOUT}, sort_keys=True)
    if (work / "signature.json").exists() and (work / "signature.json").read_text() != sig:
        remove_tree(work)
    write_atomic(work / "signature.json", sig.encode())
    _, seen = thresholds(out, shards, sources, p.seed, [1])
    if seen == 0:
        raise ValueError("fit_kmeans: no embeddings to fit (is the embed step done for the chosen sources?)")
    want = totals(min(sample_size, seen))
    n0 = min(sample_size, p.max_points_per_centroid * want[0])
    (t0, t_all), _ = thresholds(out, shards, sources, p.seed, [n0, sample_size])
    release_memory()
    if not (work / "level0.npy").exists():
        x0, _ = read_sample(out, shards, sources, p.seed, t0, p.spherical)
        level0 = fit_hierarchy(x0, want[:1], replace(p, refine_iters=0)).centroids[0]
        save_npy(work / "children.npy", _children(x0, level0, want, p))
        del x0
        save_npy(work / "level0.npy", level0)  # last: level 0 and the child counts are done
    release_memory()  # between phases: what the allocators keep from one is not added to the next's peak
    level0, children = load_npy(work / "level0.npy"), load_npy(work / "children.npy")
    partition(out, work, sorted(shards), sources, p.seed, t_all, level0, p.spherical)
    release_memory()
    sizes = np.sum([np.diff(load_npy(part / "offsets.npy")) for part in committed_parts(work)], axis=0)
    parents = [j for j in range(len(level0)) if sizes[j]]
    fitted = {f.name for f in work.glob("parent-*.npz")}  # one listing: the parents' commits
    todo = [j for j in parents if _marker(work, j).name not in fitted]
    res = FitResult(centroids=[level0], parents=[np.full(len(level0), -1, np.int32)])
    if len(want) > 1:
        k1 = children if len(children) else allocate(np.maximum(sizes.astype(np.float64), 1e-9), want[1],
                                                     np.maximum(sizes, 1))
        executor.run_calls(fit_parent, [(str(work), j, [max(1, int(k1[j]) * t // want[1]) for t in want[1:]], p)
                                        for j in todo])
        _assemble(work, res, parents, len(want))
    inertia, leaf_sizes = refine_parents(str(work), res, p, parents, executor)
    return {"result": res, "sample_rows": int(sizes.sum()), "rows_seen": seen, "parents_refitted": len(todo),
            "inertia": inertia / max(int(sizes.sum()), 1), "leaf_sizes": leaf_sizes}


def _assemble(work: Path | RemotePath, res: FitResult, parents: list[int], depth: int) -> None:
    """Join the subtrees in parent order: global ids per level, parent links shifted by the offsets."""
    cents: list[list[np.ndarray]] = [[] for _ in range(depth)]
    links: list[list[np.ndarray]] = [[] for _ in range(depth)]
    count = [0] * depth
    for j in parents:
        base = list(count)
        with np.load(io.BytesIO(_marker(work, j).read_bytes())) as z:
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
                   executor: Executor | None = None) -> tuple[float, np.ndarray]:
    """Global Lloyd iterations as map-reduce over the parents (``refine.refine``'s update), then one
    pass with the final leaves; returns (summed squared distances, leaf sizes) of that pass.

    Args:
        work: the work folder holding the partitions.
        res: the assembled tree; its leaves (and the levels above) are updated in place.
        p: k-means parameters (``refine_iters``, ``spherical``).
        parents: the non-empty level-0 parents, reduced in this order.
        executor: runs the maps (``run_calls``); default in-process.
    """
    executor = executor or _in_process()
    leaves, links = res.centroids[-1].copy(), res.parents[-1].copy()
    backend = "torch" if p.backend == "torch" else "auto" if p.gpu else "numpy"  # FAISS on the GPUs when the fit runs there
    k, d = leaves.shape
    for it in range(p.refine_iters + 1):
        # the leaves go to the tasks as one file per iteration: a task carries its path, not K × d floats
        digest = hashlib.sha256(leaves.tobytes()).hexdigest()[:16]  # the name says the content: a worker's
        path = as_path(work) / f"leaves-{it:03d}-{digest}.npy"     # cached copy is never stale
        save_npy(path, leaves)
        sums, counts, total = np.zeros((k, d)), np.zeros(k, np.int64), 0.0
        # results arrive in parent order, a window at a time: the driver never holds every parent's sums
        for nz, s, c, dist in executor.iter_calls(refine_map, [(work, j, str(path), backend, p.device) for j in parents]):
            sums[nz] += s
            counts[nz] += c
            total += dist
        path.unlink(missing_ok=True)
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
