"""The pipeline: the ordered list of per-shard stages and global steps a build runs.

A per-shard step is a ``Stage`` (run by an executor over every shard); a global step runs once,
in the driver, reading and writing files (k-means fit, vocabulary, catalog).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regionset.common.storage import worker_out
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.eta import BuildWork, StepCost
from regionset.pipelines.core.output import Output
from regionset.pipelines.dedup.cost import group_seconds
from regionset.pipelines.dedup.semdedup import semdedup
from regionset.pipelines.dedup.step import group_duplicates
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.kmeans.cost import fit_seconds
from regionset.pipelines.kmeans.fit import fit_kmeans
from regionset.pipelines.steps import GLOBAL, PIPELINE
from regionset.schemas.tables import KMEANS
from regionset.stages.assign import AssignConfig, AssignStage
from regionset.stages.base import Stage
from regionset.stages.dedup import DedupStage
from regionset.stages.detect import DetectStage
from regionset.stages.download import DownloadStage
from regionset.stages.embed import EmbedStage
from regionset.stages.ocr import OcrStage
from regionset.stages.pack import PackConfig, PackStage
from regionset.stages.regions import RegionsConfig, RegionsStage


@dataclass(frozen=True)
class GlobalStep:
    """A step that runs once over all shards: ``run(out, executor, shards) -> summary dict``, its
    typed config section already bound (``build_steps``); ``executor`` is the build's, to spread
    independent tasks on (``fit_kmeans`` with ``fit: per_parent``). ``cost``: its expected seconds
    from the build's work so far, for the ETA (``regionset.pipelines.core.eta``; None: no model)."""

    name: str
    run: Callable[[Path, Executor, list[int]], dict[str, Any]]
    cost: StepCost | None = None


Step = Stage | GlobalStep


def _with_kmeans_dir(cfg: BuildConfig) -> AssignConfig:
    """The assign config, pointed at ``OUT/kmeans`` unless it names a tree folder itself (a relative
    path is made absolute here, on the driver: workers resolve nothing against their own cwd)."""
    if cfg.assign.kmeans_dir:
        return dataclasses.replace(cfg.assign, kmeans_dir=worker_out(cfg.assign.kmeans_dir))
    return dataclasses.replace(cfg.assign, kmeans_dir=str(Output(cfg.output) / KMEANS))


def _with_sample(cfg: BuildConfig) -> PackConfig:
    """The pack config with a relative ``pack.sample`` made absolute here, on the driver."""
    if not cfg.pack.sample:
        return cfg.pack
    return dataclasses.replace(cfg.pack, sample=worker_out(cfg.pack.sample))


def _fit_cost(cfg: BuildConfig) -> StepCost:
    """``fit_kmeans``'s cost model: docs/capacity.md's multiply-adds over the regions embedded."""
    dims: list[int] = []  # the embedding width, read once (open_clip's config) when first needed

    def cost(work: BuildWork) -> tuple[float, str] | None:
        if work.regions is None:
            return None
        if not dims:
            dims.append(EmbedStage(cfg.embed).dim)
        return fit_seconds(cfg.kmeans, dims[0], work.regions, work.cores)
    return cost


def _group_cost(cfg: BuildConfig) -> StepCost:
    """``group_duplicates``' cost model: the measured grouping rates over the images (``pipelines/dedup/cost.py``)."""
    return lambda work: group_seconds(cfg.dedup, work.images) if work.images is not None else None


def build_steps(cfg: BuildConfig) -> list[Step]:
    """The steps of ``cfg.steps``, in pipeline order."""
    factories: dict[str, Callable[[], Step]] = {
        "download": lambda: DownloadStage(cfg.download),
        "dedup": lambda: DedupStage(cfg.dedup),
        "group_duplicates": lambda: GlobalStep(
            "group_duplicates", lambda out, ex, shards: group_duplicates(out, cfg.dedup, ex, shards),
            _group_cost(cfg)),
        "detect": lambda: DetectStage(cfg.detect),
        "ocr": lambda: OcrStage(cfg.ocr),
        "embed": lambda: EmbedStage(cfg.embed),
        "regions": lambda: RegionsStage(RegionsConfig(cfg.detect, cfg.ocr, cfg.embed)),
        "fit_kmeans": lambda: GlobalStep(
            "fit_kmeans", lambda out, ex, shards: fit_kmeans(out, cfg.kmeans, ex, shards, progress=cfg.progress),
            _fit_cost(cfg)),
        "assign": lambda: AssignStage(_with_kmeans_dir(cfg)),
        "semdedup": lambda: GlobalStep(
            "semdedup", lambda out, ex, shards: semdedup(out, cfg.semdedup, ex, shards)),
        "pack": lambda: PackStage(_with_sample(cfg)),
    }
    steps = [factories[name]() for name, _ in PIPELINE if name in cfg.steps]
    for step, (name, kind) in zip(steps, (p for p in PIPELINE if p[0] in cfg.steps), strict=True):
        if step.name != name or isinstance(step, GlobalStep) != (kind == GLOBAL):
            raise RuntimeError(f"step {name!r} does not match its declaration in regionset.pipelines.steps")
    return steps
