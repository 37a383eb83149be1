"""The pipeline: the ordered list of per-shard stages and global steps a build runs.

A per-shard step is a ``Stage`` (run by an executor over every shard); a global step runs once,
in the driver, reading and writing files (k-means fit, vocabulary, catalog).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import BuildConfig
from stages.base import Stage
from stages.download import DownloadStage


@dataclass(frozen=True)
class GlobalStep:
    """A step that runs once over all shards: ``run(out, cfg, shards) -> summary dict``."""

    name: str
    run: Callable[[Path, BuildConfig, list[int]], dict[str, Any]]


Step = Stage | GlobalStep


def build_steps(cfg: BuildConfig) -> list[Step]:
    """The steps of ``cfg.steps``, in pipeline order."""
    factories: dict[str, Callable[[], Step]] = {
        "download": lambda: DownloadStage(cfg.download),
    }
    return [factories[name]() for name in factories if name in cfg.steps]
