"""The build config: one YAML file mapped onto typed dataclasses (ARCHITECTURE §5).

Each stage's section is that stage's own frozen config dataclass (defaults live there, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines import typed_config
from pipelines.kmeans import KMeansConfig
from stages.assign import AssignConfig
from stages.detect import DetectConfig
from stages.download import DownloadConfig
from stages.embed import EmbedConfig
from stages.ocr import OcrConfig
from stages.pack import PackConfig

STEP_NAMES = ("download", "detect", "ocr", "embed", "fit_kmeans", "assign", "pack")


@dataclass(frozen=True)
class InputConfig:
    """The URL list.

    Args:
        path: a Parquet, CSV, JSONL or TXT file (one URL a line), or a folder of such files.
        format: file format; ``auto`` picks it from the extension.
        url_col: column holding the URL.
        caption_col: column holding the caption (optional in the file).
        shard_size: URLs per shard; the shard is the unit of work, resume and parallelism.
    """

    path: str = ""
    format: Literal["auto", "parquet", "csv", "jsonl", "txt"] = "auto"
    url_col: str = "url"
    caption_col: str = "caption"
    shard_size: int = 1000


@dataclass(frozen=True)
class ExecutorConfig:
    """Which backend runs the per-shard stages.

    Args:
        name: ``local`` (in-process, the default).
        processes: worker processes for ``local`` (1 = in-process).
    """

    name: Literal["local"] = "local"
    processes: int = 1


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``regionset build`` needs."""

    output: str = "regionset-out"
    input: InputConfig = field(default_factory=InputConfig)
    steps: tuple[str, ...] = STEP_NAMES
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    progress: bool = True
    download: DownloadConfig = field(default_factory=DownloadConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    assign: AssignConfig = field(default_factory=AssignConfig)
    pack: PackConfig = field(default_factory=PackConfig)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> BuildConfig:
    """Load a BuildConfig from YAML plus ``key=value`` overrides; errors name the key."""
    cfg = typed_config.load(BuildConfig, path, overrides)
    unknown = [s for s in cfg.steps if s not in STEP_NAMES]
    if unknown:
        raise typed_config.ConfigError(f"steps: unknown step {unknown[0]!r}; known: {list(STEP_NAMES)}")
    if cfg.input.shard_size < 1:
        raise typed_config.ConfigError("input.shard_size: must be >= 1")
    return cfg
