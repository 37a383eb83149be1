"""fit_kmeans: the global step that fits the hierarchical cluster tree on a sample of the embeddings.

Reads a uniform sample of the chosen sources' embeddings from every shard (``kmeans_sample``), fits
the tree (``hierarchical_kmeans``) and writes ``OUT/kmeans/level-i/{centroids,parents}.npy`` and
``kmeans.json``. A tree fitted with the same config is **frozen**: later builds (e.g. on an extended
URL list) reuse it, so the assign stage only labels new shards; ``kmeans.refit=true`` refits on
every shard present, which changes the centroids' hash and so re-assigns every shard.
FAISS runs on every visible GPU when a GPU build of faiss is installed, on the CPU otherwise;
``kmeans.backend: torch`` (or ``auto`` with no faiss GPU build but a CUDA device torch sees) runs
every k-means with torch instead (``regionset.pipelines.kmeans.backend``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from regionset.common.files import remove_tree
from regionset.models.kmeans_index import ClusterTree, l2_normalize, read_meta
from regionset.pipelines.core.failpoints import failpoint
from regionset.pipelines.core.fence import check_commit
from regionset.pipelines.core.lineage import add_to_lineage
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import StepProgress, console
from regionset.pipelines.kmeans.backend import Resolved, resolve_backend
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit_choice import fit_signature, resolve_fit, reusable
from regionset.pipelines.kmeans.params import FitParams, FitResult, ProgressFn
from regionset.pipelines.kmeans.search import nearest
from regionset.pipelines.kmeans.sizing import WARNING_PREFIX, auto_levels, auto_rule, tree_warnings
from regionset.pipelines.kmeans.tree import fit_hierarchy
from regionset.schemas.tables import KMEANS

if TYPE_CHECKING:
    from regionset.pipelines.executors.base import Executor


def level_totals(kc: KMeansConfig, sampled: int | None = None) -> list[int]:
    """Wanted number of clusters at each level.

    Args:
        kc: the k-means config.
        sampled: sampled regions (needed when ``levels`` is ``auto``).
    """
    if kc.levels == "auto":
        if sampled is None:
            raise ValueError("kmeans.levels: auto needs the number of sampled regions")
        levels: tuple[int, ...] = auto_levels(sampled)
        return [math.prod(levels[:i + 1]) for i in range(len(levels))]
    kc.check()  # kmeans.levels: positive sizes, totals non-decreasing (ConfigError naming the key)
    if kc.level_sizes == "totals":
        return list(kc.levels)
    return [math.prod(kc.levels[:i + 1]) for i in range(len(kc.levels))]


def fit_tree(x: np.ndarray, kc: KMeansConfig,
             progress: ProgressFn | None = None) -> tuple[ClusterTree, dict[str, Any]]:
    """Fit the tree of ``kc`` on an in-memory sample; return it and its fit statistics.

    Args:
        x: (n, d) float32 sample (normalised here in spherical mode).
        kc: the k-means config.
        progress: ``progress(phase, done, total, rows=0)`` as each level and refinement advances.
    """

    t0 = time.perf_counter()
    kc.check()  # kmeans.refine_iters and the rest, naming the key
    kc = dataclasses.replace(kc, fit="local")  # the in-memory fit, whatever ``fit`` asked
    if kc.spherical:
        x = l2_normalize(x)
    run = resolve_backend(kc)
    kc = dataclasses.replace(kc, backend=run.backend)
    p = _params(kc, run)
    res = fit_hierarchy(x, level_totals(kc, len(x)), p, progress)
    tree = ClusterTree(res.centroids, res.parents, kc.spherical, {})
    leaf, dist = nearest(x, tree.centroids[-1], p, "auto")
    leaf_sizes = np.bincount(leaf, minlength=tree.num_leaves)
    tree.meta.update(_meta(kc, res, len(x), run, float(dist.mean()), leaf_sizes, t0))
    return tree, tree.meta


def _params(kc: KMeansConfig, run: Resolved) -> FitParams:
    return FitParams(niter=kc.niter, seed=kc.seed, spherical=kc.spherical,
                     max_points_per_centroid=kc.max_points_per_centroid, allocate_by=kc.allocate_by,
                     gpu=run.backend == "faiss" and run.gpus > 0, refine_iters=kc.refine_iters,
                     seeding=kc.seeding, backend=run.backend, device=run.device)


def _meta(kc: KMeansConfig, res: FitResult, sample_rows: int, run: Resolved, inertia: float,
          leaf_sizes: np.ndarray, t0: float) -> dict[str, Any]:
    """``kmeans.json`` of a fitted tree (both fits): config, sizes, sample statistics, warnings."""
    try:
        import faiss

        faiss_version = faiss.__version__
    except ImportError:  # the torch backend runs without faiss
        faiss_version = None

    auto = kc.levels == "auto"
    meta: dict[str, Any] = {
        "levels": list(auto_levels(sample_rows)) if auto else list(kc.levels), "levels_auto": auto,
        "level_sizes": "branching" if auto else kc.level_sizes, "requested": level_totals(kc, sample_rows),
        "seeding": kc.seeding, "sizes": [len(c) for c in res.centroids], "dim": int(res.centroids[0].shape[1]),
        "sample_rows": int(sample_rows), "sample_size": kc.sample_size, "seed": kc.seed, "niter": kc.niter,
        "spherical": kc.spherical, "sources": list(kc.sources), "allocate_by": kc.allocate_by,
        "max_points_per_centroid": kc.max_points_per_centroid, "refine_iters": kc.refine_iters,
        "faiss_version": faiss_version, "gpus": run.gpus, "backend": run.backend,
        "degenerate": {k: int(v) for k, v in res.stats.items()}, "signature": fit_signature(kc),
        "sample_inertia": inertia, "empty_leaves_in_sample": int((leaf_sizes == 0).sum()),
        "median_leaf_regions": float(np.median(leaf_sizes)),
    }
    if run.backend == "torch":
        from regionset.models.kmeans_torch import describe_device

        meta.update(describe_device(run.device))
    if auto:
        meta["auto_rule"] = auto_rule()
    meta["warnings"] = tree_warnings(meta)
    meta["fit_seconds"] = round(time.perf_counter() - t0, 3)
    return meta


def fit_kmeans(out: Output, kc: KMeansConfig, executor: Executor, shards: list[int],
               progress: bool = False) -> dict[str, Any]:
    """The ``fit_kmeans`` global step: reuse a frozen tree or fit a new one; return a summary.

    Args:
        out: the output folder.
        kc: the ``kmeans`` section.
        executor: the build's executor; runs the tasks of ``fit: per_parent``.
        shards: the build's shard ids (the sample is drawn from all of them).
        progress: draw the step's progress bar (the build's ``progress``).
    """
    root = out / KMEANS
    old = read_meta(root)
    if old is not None and not kc.refit and reusable(old.get("signature"), kc):
        _announce(out, old)
        return {"reused": True, "fit": old.get("fit", "local"), "fit_requested": kc.fit,
                "leaves": old["sizes"][-1], "sizes": old["sizes"], "centroids_sha256": old["centroids_sha256"][:12], "warnings": old.get("warnings", [])}
    from regionset.pipelines.kmeans.sample import uniform_sample  # pandas: kept out of config loading

    t0 = time.perf_counter()
    choice = resolve_fit(out, kc, shards)  # auto: local or per_parent, from the footers
    kc = dataclasses.replace(kc, fit=choice.fit)
    if kc.fit == "per_parent":
        from regionset.pipelines.kmeans.distributed import WORK

        tree, meta = _fit_per_parent(out, kc, shards, executor)
    else:
        with StepProgress("fit_kmeans", enabled=progress) as bar:
            sample = uniform_sample(out, shards, tuple(kc.sources), kc.sample_size, kc.seed, progress=bar)
            if sample.rows_seen == 0:
                return {"reused": False, "skipped": "no embeddings of sources " + ",".join(kc.sources)}
            tree, meta = fit_tree(sample.x, kc, bar)
        meta["rows_seen"] = sample.rows_seen
    meta.update(choice.record())
    meta["shards"] = len(shards)
    meta["wall_seconds"] = round(time.perf_counter() - t0, 3)
    meta["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Commit without rename (the same on disk and on object stores): the old tree goes first, with its
    # kmeans.json; the arrays are written under their final names, kmeans.json last. A kill in
    # between leaves no kmeans.json: readers see no tree, the next build deletes the arrays and refits.
    check_commit(root)  # only the lock's holder replaces the tree
    remove_tree(root)
    tree.write_levels(root)
    failpoint("kmeans:fitted")  # kill tests: fitted and written, not yet committed
    check_commit(root)
    digest = tree.write_meta(root)
    if kc.fit == "per_parent":
        remove_tree(out / WORK)  # partitions and per-parent markers
    _announce(out, meta)
    return {"reused": False, "fit": choice.fit, "fit_requested": choice.requested, "warnings": meta["warnings"],
            "leaves": meta["sizes"][-1], "sizes": meta["sizes"],
            "sample": meta["sample_rows"], "inertia": round(meta["sample_inertia"], 4),
            "centroids_sha256": digest[:12], **{k: v for k, v in meta["degenerate"].items() if v}}


def _fit_per_parent(out: Output, kc: KMeansConfig, shards: list[int], executor: Executor) -> tuple[ClusterTree, dict[str, Any]]:
    """``kmeans.fit: per_parent`` (``regionset.pipelines.kmeans.distributed``) on ``executor``: the tree and its metadata."""
    from regionset.pipelines.kmeans.distributed import fit_per_parent

    t0 = time.perf_counter()
    run = resolve_backend(kc)
    kc = dataclasses.replace(kc, backend=run.backend)
    got = fit_per_parent(out, shards, tuple(kc.sources), kc.sample_size, lambda n: level_totals(kc, n),
                         _params(kc, run), fit_signature(kc), executor)
    res = got["result"]
    meta = _meta(kc, res, got["sample_rows"], run, float(got["inertia"]), got["leaf_sizes"], t0)
    meta.update(fit="per_parent", executor=executor.name,
                parents_refitted=got["parents_refitted"], rows_seen=got["rows_seen"])
    return ClusterTree(res.centroids, res.parents, kc.spherical, meta), meta


def _announce(out: Output, meta: dict[str, Any]) -> None:
    """Print the tree's warnings like the random-weights one and record the tree in regionset.yaml."""
    for w in meta.get("warnings", []):
        console.print(f"[bold red]WARNING[/]: {w}")
    add_to_lineage(out, "kmeans_tree", {
        "levels": meta["levels"], "levels_auto": meta.get("levels_auto", False), "sizes": meta["sizes"],
        "sample_rows": meta["sample_rows"], "seeding": meta.get("seeding", "random"), "fit": meta.get("fit", "local"),
        "centroids_sha256": meta.get("centroids_sha256", "")[:12]}, meta.get("warnings", []), WARNING_PREFIX)
