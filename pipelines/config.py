"""The build config: one YAML file mapped onto typed dataclasses (README "Configuration").

Only assembles the sections: each is its owner's own frozen config dataclass (a stage's in its stage
file, ``input`` in ``core/inputs.py``, ``executor`` in ``executors/config.py``, ``kmeans`` and
``semdedup`` in their package's ``config.py``); defaults and value checks live there, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from regionset.common import typed_config
from regionset.pipelines.core.inputs import InputConfig
from regionset.pipelines.core.metrics import MetricsConfig
from regionset.pipelines.dedup.config import SemDedupConfig
from regionset.pipelines.executors.config import ExecutorConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.steps import DEFAULT_STEPS, FUSED, STEP_NAMES
from regionset.stages.assign import AssignConfig
from regionset.stages.base import Resources
from regionset.stages.dedup import DedupConfig
from regionset.stages.detect import DetectConfig
from regionset.stages.download import DownloadConfig
from regionset.stages.embed import EmbedConfig
from regionset.stages.ocr import OcrConfig
from regionset.stages.pack import PackConfig

OUTPUT_LOCKS = ("lease", "none")


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``regionset build`` needs.

    Args:
        output: the output folder (tables, markers, catalog.duckdb); a re-run resumes it.
        input: the URL list.
        steps: the steps to run, in pipeline order.
        executor: which backend runs the per-shard stages.
        progress: draw progress bars and the summary tables.
        download: how images are fetched and stored.
        dedup: exact and near-duplicate images, and evaluation images to keep out (docs/curation.md).
        detect: how object regions are proposed and filtered.
        ocr: how text regions are read and filtered.
        embed: how region crops are embedded.
        kmeans: the cluster tree.
        assign: how regions get their labels.
        semdedup: semantic region duplicates within each leaf cluster (opt-in step, docs/curation.md).
        pack: how training shards are written.
        output_lock: ``lease`` (one writer: a lock file, or a lease object on an object store) or
            ``none`` (no lock: only for a store without conditional writes; warned about loudly).
        lease_seconds: an object-store lease not renewed for this long may be taken over.
        metrics: the driver's live metrics endpoint (Prometheus text format; docs/operations.md).
    """

    output: str = "regionset-out"
    input: InputConfig = field(default_factory=InputConfig)
    steps: tuple[str, ...] = DEFAULT_STEPS
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    progress: bool = True
    download: DownloadConfig = field(default_factory=DownloadConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    assign: AssignConfig = field(default_factory=AssignConfig)
    semdedup: SemDedupConfig = field(default_factory=SemDedupConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    output_lock: str = "lease"
    lease_seconds: float = 120.0
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # how a build is watched or guarded, not what it makes: left out of the config hash, so turning
    # the metrics endpoint on or changing the lease does not make a build look like another one
    NOT_HASHED: ClassVar[tuple[str, ...]] = ("metrics", "output_lock", "lease_seconds")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> BuildConfig:
    """Load a BuildConfig from YAML plus ``key=value`` overrides; errors name the key (each section
    checks its own values: ``check()`` beside its fields)."""
    cfg = typed_config.load_config(BuildConfig, path, overrides)
    unknown = [s for s in cfg.steps if s not in STEP_NAMES]
    if unknown:
        raise typed_config.ConfigError(f"steps: unknown step {unknown[0]!r}; known: {list(STEP_NAMES)}")
    for fused, parts in FUSED.items():
        both = [s for s in parts if s in cfg.steps]
        if fused in cfg.steps and both:
            raise typed_config.ConfigError(f"steps: {fused} replaces {', '.join(parts)}; drop {both[0]!r}")
    for f in dataclasses.fields(cfg):  # every section that declares value checks
        section = getattr(cfg, f.name)
        check = getattr(section, "check", None)
        if callable(check):
            check()
        if isinstance(getattr(section, "resources", None), Resources):  # a stage's per-worker hint
            section.resources.check(f"{f.name}.resources")
    if cfg.output_lock not in OUTPUT_LOCKS:
        raise typed_config.ConfigError(f"output_lock: {cfg.output_lock!r} is not one of {list(OUTPUT_LOCKS)}")
    if cfg.lease_seconds <= 0:
        raise typed_config.ConfigError(f"lease_seconds: must be > 0, got {cfg.lease_seconds}")
    return cfg
