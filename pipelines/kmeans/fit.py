"""fit_kmeans: the global step that fits the hierarchical cluster tree on a sample of the embeddings.

Reads a uniform sample of the chosen sources' embeddings from every shard (``kmeans_sample``), fits
the tree (``hierarchical_kmeans``) and writes ``OUT/kmeans/level-i/{centroids,parents}.npy`` and
``kmeans.json``. A tree fitted with the same config is **frozen**: later builds (e.g. on an extended
URL list) reuse it, so the assign stage only labels new shards; ``kmeans.refit=true`` refits on
every shard present, which changes the centroids' hash and so re-assigns every shard.
FAISS runs on every visible GPU when a GPU build of faiss is installed, on the CPU otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.kmeans_index import ClusterTree, l2_normalize, read_meta
from pipelines.failpoints import failpoint
from pipelines.kmeans.tree import FitParams, ProgressFn, fit_hierarchy
from pipelines.progress import StepProgress
from schemas.tables import KMEANS, SOURCE_OBJECT


@dataclass(frozen=True)
class KMeansConfig:
    """The cluster tree.

    Args:
        levels: clusters per level, coarsest first. ``level_sizes: branching`` (default): children
            per parent on average, so ``[1000, 100]`` gives 1,000 top clusters and ~100,000 leaves;
            ``totals``: the number of clusters of each level.
        level_sizes: how ``levels`` is read (``branching`` or ``totals``).
        sample_size: embeddings the fit samples uniformly (memory: sample_size × d × 4 bytes).
        niter: k-means iterations of every FAISS fit.
        seed: seed of the sample and of every k-means (same seed and data -> same centroids).
        spherical: cosine k-means for L2-normalised CLIP features (unit-norm centroids).
        refit: refit even when a tree fitted with this config exists (default: reuse it, frozen).
        sources: region sources clustered (``object``; add ``text`` to cluster OCR crops too).
        allocate_by: share a level's children among parents by ``size`` or by ``sse`` (spread).
        max_points_per_centroid: FAISS trains each k-means on at most this many points per
            centroid (it subsamples the rest); every point is still labelled exactly afterwards.
        refine_iters: global Lloyd iterations over all leaves after the tree is fitted (exact
            assignment of the whole sample, then means); 0 keeps each parent's k-means as is.
        device: ``auto`` uses faiss GPU (all visible GPUs) when available, ``cpu`` never does.
    """

    levels: tuple[int, ...] = (1000, 100)
    level_sizes: Literal["branching", "totals"] = "branching"
    sample_size: int = 1_000_000
    niter: int = 20
    seed: int = 0
    spherical: bool = True
    refit: bool = False
    sources: tuple[str, ...] = (SOURCE_OBJECT,)
    allocate_by: Literal["size", "sse"] = "size"
    max_points_per_centroid: int = 256
    refine_iters: int = 2
    device: Literal["auto", "cpu", "gpu"] = "auto"


def level_totals(kc: KMeansConfig) -> list[int]:
    """Wanted number of clusters at each level."""
    if not kc.levels or any(k < 1 for k in kc.levels):
        raise ValueError(f"kmeans.levels: need one or more positive sizes, got {list(kc.levels)}")
    if kc.level_sizes == "totals":
        if list(kc.levels) != sorted(kc.levels):
            raise ValueError("kmeans.levels: totals must be non-decreasing")
        return list(kc.levels)
    return [math.prod(kc.levels[:i + 1]) for i in range(len(kc.levels))]


def fit_signature(kc: KMeansConfig) -> dict[str, Any]:
    """The config fields that decide the tree (all but ``refit`` and ``device``), as JSON."""
    d = dataclasses.asdict(kc)
    d.pop("refit")
    d.pop("device")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _use_gpu(kc: KMeansConfig) -> int:
    import faiss

    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if kc.device == "gpu" and n == 0:
        raise RuntimeError("kmeans.device=gpu but faiss sees no GPU (install faiss-gpu, or use device=auto)")
    return n if kc.device != "cpu" else 0


def fit_tree(x: np.ndarray, kc: KMeansConfig,
             progress: ProgressFn | None = None) -> tuple[ClusterTree, dict[str, Any]]:
    """Fit the tree of ``kc`` on an in-memory sample; return it and its fit statistics.

    Args:
        x: (n, d) float32 sample (normalised here in spherical mode).
        kc: the k-means config.
        progress: ``progress(phase, done, total, rows=0)`` as each level and refinement advances.
    """
    import faiss

    t0 = time.perf_counter()
    if kc.refine_iters < 0:
        raise ValueError(f"kmeans.refine_iters: need 0 or more iterations, got {kc.refine_iters}")
    if kc.spherical:
        x = l2_normalize(x)
    gpus = _use_gpu(kc)
    params = FitParams(niter=kc.niter, seed=kc.seed, spherical=kc.spherical,
                       max_points_per_centroid=kc.max_points_per_centroid,
                       allocate_by=kc.allocate_by, gpu=gpus > 0, refine_iters=kc.refine_iters)
    res = fit_hierarchy(x, level_totals(kc), params, progress)
    meta: dict[str, Any] = {
        "levels": list(kc.levels), "level_sizes": kc.level_sizes, "requested": level_totals(kc),
        "sizes": [len(c) for c in res.centroids], "dim": int(x.shape[1]), "sample_rows": int(len(x)),
        "sample_size": kc.sample_size, "seed": kc.seed, "niter": kc.niter, "spherical": kc.spherical,
        "sources": list(kc.sources), "allocate_by": kc.allocate_by,
        "max_points_per_centroid": kc.max_points_per_centroid, "refine_iters": kc.refine_iters,
        "faiss_version": faiss.__version__,
        "gpus": gpus, "degenerate": dict(res.stats), "signature": fit_signature(kc),
    }
    tree = ClusterTree(res.centroids, res.parents, kc.spherical, meta)
    paths, dist = tree.assign(x)
    leaf_sizes = np.bincount(paths[:, -1], minlength=tree.num_leaves)
    meta["sample_inertia"] = float(dist.mean())
    meta["empty_leaves_in_sample"] = int((leaf_sizes == 0).sum())
    meta["fit_seconds"] = round(time.perf_counter() - t0, 3)
    return tree, meta


def fit_kmeans(out: Path, cfg: Any, shards: list[int]) -> dict[str, Any]:
    """The ``fit_kmeans`` global step: reuse a frozen tree or fit a new one; return a summary.

    Args:
        out: the output folder.
        cfg: the BuildConfig (its ``kmeans`` section is used).
        shards: the build's shard ids (the sample is drawn from all of them).
    """
    kc: KMeansConfig = cfg.kmeans
    root = Path(out) / KMEANS
    old = read_meta(root)
    if old is not None and not kc.refit and old.get("signature") == fit_signature(kc):
        return {"reused": True, "leaves": old["sizes"][-1], "sizes": old["sizes"],
                "centroids_sha256": old["centroids_sha256"][:12]}
    from pipelines.kmeans.sample import uniform_sample  # pandas: kept out of config loading

    t0 = time.perf_counter()
    with StepProgress("fit_kmeans", enabled=bool(getattr(cfg, "progress", False))) as bar:
        sample = uniform_sample(Path(out), shards, tuple(kc.sources), kc.sample_size, kc.seed, progress=bar)
        if sample.rows_seen == 0:
            return {"reused": False, "skipped": "no embeddings of sources " + ",".join(kc.sources)}
        tree, meta = fit_tree(sample.x, kc, bar)
    meta["rows_seen"] = sample.rows_seen
    meta["shards"] = len(shards)
    meta["wall_seconds"] = round(time.perf_counter() - t0, 3)
    meta["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = Path(out) / f".{KMEANS}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    digest = tree.save(tmp)
    failpoint("kmeans:fitted")  # kill tests: fitted and saved to the temp folder, not yet swapped in
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return {"reused": False, "leaves": meta["sizes"][-1], "sizes": meta["sizes"],
            "sample": meta["sample_rows"], "inertia": round(meta["sample_inertia"], 4),
            "centroids_sha256": digest[:12], **{k: v for k, v in meta["degenerate"].items() if v}}
