"""The pipeline: the ordered list of per-shard stages and global steps a build runs.

A per-shard step is a ``Stage`` (run by an executor over every shard); a global step runs once,
in the driver, reading and writing files (k-means fit, vocabulary, catalog).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regionset.common.shard_names import STATE_DIR
from regionset.common.storage import as_path, worker_out
from regionset.models.kmeans_index import KMEANS_JSON
from regionset.pipelines import semdedup as semdedup_step
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.dedup import group_duplicates
from regionset.pipelines.dedup import step as dedup_step
from regionset.pipelines.kmeans import fit_kmeans
from regionset.pipelines.semdedup import semdedup
from regionset.pipelines.steps import GLOBAL, PIPELINE
from regionset.schemas import DUPLICATES, REGION_DUPLICATES
from regionset.schemas.tables import KMEANS
from regionset.stages.assign import AssignConfig, AssignStage
from regionset.stages.base import Stage
from regionset.stages.dedup import DedupStage
from regionset.stages.detect import DetectStage
from regionset.stages.download import DownloadStage
from regionset.stages.embed import EmbedStage
from regionset.stages.ocr import OcrStage
from regionset.stages.pack import PackStage


@dataclass(frozen=True)
class GlobalStep:
    """A step that runs once over all shards: ``run(out, cfg, shards) -> summary dict``; with
    ``uses_executor`` it also gets ``executor=`` (the build's, to spread independent tasks on)."""

    name: str
    run: Callable[..., dict[str, Any]]
    uses_executor: bool = False


Step = Stage | GlobalStep


def _with_kmeans_dir(cfg: BuildConfig) -> AssignConfig:
    """The assign config, pointed at ``OUT/kmeans`` unless it names a tree folder itself."""
    if cfg.assign.kmeans_dir:
        return cfg.assign
    return dataclasses.replace(cfg.assign, kmeans_dir=str(as_path(worker_out(cfg.output)) / KMEANS))


def stage_outputs() -> dict[str, str]:
    """Table folder -> the shard stage that writes it (on object stores its markers commit the folder)."""
    return {cls.output: cls.name for cls in (DownloadStage, DedupStage, DetectStage, OcrStage, EmbedStage,
                                             AssignStage, PackStage)}


def global_outputs() -> dict[str, str]:
    """Folder a global step writes -> its completion file (relative to OUT), written last: the commit
    of the whole folder, since object stores have no rename (README "Object storage")."""
    return {DUPLICATES: f"{STATE_DIR}/{dedup_step.STATE_FILE}",
            KMEANS: f"{KMEANS}/{KMEANS_JSON}",
            REGION_DUPLICATES: f"{STATE_DIR}/{semdedup_step.STATE_FILE}"}


def build_steps(cfg: BuildConfig) -> list[Step]:
    """The steps of ``cfg.steps``, in pipeline order."""
    factories: dict[str, Callable[[], Step]] = {
        "download": lambda: DownloadStage(cfg.download),
        "dedup": lambda: DedupStage(cfg.dedup),
        "group_duplicates": lambda: GlobalStep("group_duplicates", group_duplicates),
        "detect": lambda: DetectStage(cfg.detect),
        "ocr": lambda: OcrStage(cfg.ocr),
        "embed": lambda: EmbedStage(cfg.embed),
        "fit_kmeans": lambda: GlobalStep("fit_kmeans", fit_kmeans, uses_executor=True),
        "assign": lambda: AssignStage(_with_kmeans_dir(cfg)),
        "semdedup": lambda: GlobalStep("semdedup", semdedup),
        "pack": lambda: PackStage(cfg.pack),
    }
    steps = [factories[name]() for name, _ in PIPELINE if name in cfg.steps]
    for step, (name, kind) in zip(steps, (p for p in PIPELINE if p[0] in cfg.steps), strict=True):
        if step.name != name or isinstance(step, GlobalStep) != (kind == GLOBAL):
            raise RuntimeError(f"step {name!r} does not match its declaration in regionset.pipelines.steps")
    return steps
