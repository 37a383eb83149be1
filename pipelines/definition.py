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

from pipelines.config import STEP_NAMES, BuildConfig
from pipelines.dedup import group_duplicates
from pipelines.kmeans import KMEANS_DIR, fit_kmeans
from pipelines.semdedup import semdedup
from stages.assign import AssignConfig, AssignStage
from stages.base import Stage
from stages.dedup import DedupStage
from stages.detect import DetectStage
from stages.download import DownloadStage
from stages.embed import EmbedStage
from stages.ocr import OcrStage
from stages.pack import PackStage


@dataclass(frozen=True)
class GlobalStep:
    """A step that runs once over all shards: ``run(out, cfg, shards) -> summary dict``."""

    name: str
    run: Callable[[Path, BuildConfig, list[int]], dict[str, Any]]


Step = Stage | GlobalStep


def _with_kmeans_dir(cfg: BuildConfig) -> AssignConfig:
    """The assign config, pointed at ``OUT/kmeans`` unless it names a tree folder itself."""
    if cfg.assign.kmeans_dir:
        return cfg.assign
    return dataclasses.replace(cfg.assign, kmeans_dir=str(Path(cfg.output).resolve() / KMEANS_DIR))


def build_steps(cfg: BuildConfig) -> list[Step]:
    """The steps of ``cfg.steps``, in pipeline order."""
    factories: dict[str, Callable[[], Step]] = {
        "download": lambda: DownloadStage(cfg.download),
        "dedup": lambda: DedupStage(cfg.dedup),
        "group_duplicates": lambda: GlobalStep("group_duplicates", group_duplicates),
        "detect": lambda: DetectStage(cfg.detect),
        "ocr": lambda: OcrStage(cfg.ocr),
        "embed": lambda: EmbedStage(cfg.embed),
        "fit_kmeans": lambda: GlobalStep("fit_kmeans", fit_kmeans),
        "assign": lambda: AssignStage(_with_kmeans_dir(cfg)),
        "semdedup": lambda: GlobalStep("semdedup", semdedup),
        "pack": lambda: PackStage(cfg.pack),
    }
    return [factories[name]() for name in STEP_NAMES if name in factories and name in cfg.steps]
