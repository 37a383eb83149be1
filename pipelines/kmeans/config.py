"""The ``kmeans`` section of the build config and its validation (imports nothing of ``pipelines/``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from regionset.common.typed_config import ConfigError
from regionset.schemas.tables import SOURCE_OBJECT

FITS = ("local", "per_parent")
BACKENDS = ("auto", "faiss", "torch")


@dataclass(frozen=True)
class KMeansConfig:
    """The cluster tree.

    Args:
        levels: ``auto`` (default): chosen from the number of sampled regions
            (``regionset.pipelines.kmeans.sizing``: ~√n leaves, up to RICE's 2,400 regions per leaf, at least
            50; two levels from 100 leaves on). Or clusters per level, coarsest first:
            ``level_sizes: branching``: children per parent on average, so ``[1000, 100]`` gives
            1,000 top clusters and ~100,000 leaves; ``totals``: the number of clusters of each level.
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
        seeding: initial centroids of every k-means: ``kmeans++`` (greedy k-means++ over each whole
            level, which also decides the children per parent; ``regionset.pipelines.kmeans.seeding``) or
            ``random`` (FAISS's uniform pick, children shared out by ``allocate_by``).
        device: ``auto`` uses a GPU when the backend sees one, ``cpu`` never does, ``gpu``
            requires one (an error when the backend sees none).
        backend: who runs every k-means, the refinement and the fit's nearest-centroid passes:
            ``faiss``; ``torch`` (``regionset.pipelines.kmeans.lloyd_torch``: any device torch sees, in
            blocks sized to its free memory, no faiss GPU build needed); ``auto`` (default): faiss
            when a faiss GPU build sees a GPU, else torch when torch sees a CUDA device, else faiss
            on the CPU (with ``device: cpu``: faiss on the CPU). Same seeds, sizes and tree files
            either way; the centroids differ (a second implementation), so a torch tree has its own
            ``signature`` (docs/kmeans-labels.md).
        fit: ``auto`` (default): ``local`` when the whole sample (min(sample_size, regions) × d × 4
            bytes, from the Parquet footers, never this machine's RAM) is at most ``local_max_mib``,
            else ``per_parent`` (``regionset.pipelines.kmeans.fit_choice``). ``local``: the whole sample in
            this process, level-wide k-means++; ``per_parent``: level 0 here, every level-0 parent's
            subtree as a task on the build's executor (local processes, Ray tasks, Spark partitions),
            refinement as map-reduce, resumable per parent; memory bounded by the level-0 sample or
            one parent's points (``regionset.pipelines.kmeans.distributed``; a different tree, identical on
            every executor).
        local_max_mib: the largest float32 sample (MiB) that ``fit: auto`` fits locally; the
            driver peaks at several times it (2048: the default 1M-row sample stays local up to
            d = 512).
    """

    levels: tuple[int, ...] | Literal["auto"] = "auto"
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
    seeding: Literal["kmeans++", "random"] = "kmeans++"
    device: Literal["auto", "cpu", "gpu"] = "auto"
    fit: Literal["auto", "local", "per_parent"] = "auto"
    local_max_mib: float = 2048.0
    backend: Literal["auto", "faiss", "torch"] = "auto"
    # added after trees existed: hashed only when set, so a config without it keeps its hash
    HASH_OMIT_DEFAULT: ClassVar[tuple[str, ...]] = ("backend",)

    def check(self) -> None:
        """Raise ConfigError (naming the key) for a ``levels`` / ``refine_iters`` / ``fit`` /
        ``backend`` / ``local_max_mib`` that cannot work (at config load, and again when a step gets a config
        built in code)."""
        if self.levels != "auto":
            if isinstance(self.levels, str) or not self.levels or any(k < 1 for k in self.levels):
                raise ConfigError(f"kmeans.levels: need auto or one or more positive sizes, got {self.levels!r}")
            if self.level_sizes == "totals" and list(self.levels) != sorted(self.levels):
                raise ConfigError("kmeans.levels: totals must be non-decreasing")
        if self.refine_iters < 0:
            raise ConfigError(f"kmeans.refine_iters: need 0 or more iterations, got {self.refine_iters}")
        if self.fit not in ("auto", *FITS):
            raise ConfigError(f"kmeans.fit: expected one of ['auto', 'local', 'per_parent'], got {self.fit!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"kmeans.backend: expected one of {list(BACKENDS)}, got {self.backend!r}")
        if not self.local_max_mib > 0:  # NaN too
            raise ConfigError(f"kmeans.local_max_mib: must be > 0 (MiB of float32 sample), got {self.local_max_mib!r}")
