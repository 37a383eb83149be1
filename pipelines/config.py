"""The build config: one YAML file mapped onto typed dataclasses (README "Configuration").

Each stage's section is that stage's own frozen config dataclass (defaults live there, once).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from regionset.common import typed_config
from regionset.pipelines.kmeans import KMeansConfig
from regionset.pipelines.kmeans.fit_choice import check_config as check_kmeans
from regionset.pipelines.semdedup import SemDedupConfig
from regionset.pipelines.steps import DEFAULT_STEPS, STEP_NAMES
from regionset.stages.assign import AssignConfig
from regionset.stages.dedup import DedupConfig
from regionset.stages.detect import DetectConfig
from regionset.stages.download import DownloadConfig
from regionset.stages.embed import EmbedConfig
from regionset.stages.ocr import OcrConfig
from regionset.stages.pack import PackConfig


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
class RayConfig:
    """The ``ray`` executor (Ray Data; extra ``ray``). See docs/cluster.md.

    Args:
        address: an existing cluster (``auto`` = the one ``ray start`` or ``RAY_ADDRESS`` names,
            ``host:6379``, ``ray://host:10001``); empty starts a fresh local Ray for this build,
            whatever ``ray start`` left on the machine or ``RAY_ADDRESS`` says.
        num_cpus: CPUs of a local Ray (0 = all of this machine); ignored with ``address``.
        actors: actor-pool size per stage (0 = as many as the CPUs or GPUs allow, capped by shards).
        reserve_cpus: CPUs left free for Ray Data's own tasks; actors get fractional CPUs so that
            a pool never holds every CPU (a full pool deadlocks the reads).
        gpus_per_actor: override of the stage's GPU hint (-1 = use the stage's ``resources.gpus``).
    """

    address: str = ""
    num_cpus: int = 0
    actors: int = 0
    reserve_cpus: float = 0.5
    gpus_per_actor: float = -1.0


@dataclass(frozen=True)
class SparkConfig:
    """The ``spark`` executor (PySpark ``mapInArrow``; extra ``spark``). See docs/cluster.md.

    Args:
        master: ``local[*]`` (default), ``local[N]``, or a cluster URL (``spark://host:7077``, ``yarn``).
        python: interpreter of the Python workers (empty = this interpreter, ``sys.executable``).
        conf: extra Spark settings, e.g. ``{"spark.executor.memory": "8g"}``.
    """

    master: str = "local[*]"
    python: str = ""
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorConfig:
    """Which backend runs the per-shard stages.

    Args:
        name: ``local`` (in-process, the default), ``ray`` (Ray Data) or ``spark`` (PySpark).
        processes: worker processes for ``local`` (1 = in-process); ``auto`` = as many as each stage's
            ``resources.cpus`` fits on this machine (one per core when it is 0). Each worker's thread
            pools get cores ÷ workers threads (docs/cluster.md "Threads per worker").
        ray: settings of the ``ray`` executor.
        spark: settings of the ``spark`` executor.
        connect_timeout: seconds the preflight waits for a Ray or Spark address to answer.
    """

    name: Literal["local", "ray", "spark"] = "local"
    processes: int | Literal["auto"] = 1
    ray: RayConfig = field(default_factory=RayConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    connect_timeout: float = 20.0


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


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> BuildConfig:
    """Load a BuildConfig from YAML plus ``key=value`` overrides; errors name the key."""
    cfg = typed_config.load_config(BuildConfig, path, overrides)
    unknown = [s for s in cfg.steps if s not in STEP_NAMES]
    if unknown:
        raise typed_config.ConfigError(f"steps: unknown step {unknown[0]!r}; known: {list(STEP_NAMES)}")
    if cfg.dedup.bands < 1 or 64 % cfg.dedup.bands:
        raise typed_config.ConfigError(f"dedup.bands: {cfg.dedup.bands} must divide 64 (1, 2, 4, 8, 16, 32 or 64)")
    if cfg.dedup.halvings not in (1, 2):
        raise typed_config.ConfigError(f"dedup.halvings: {cfg.dedup.halvings} must be 1 or 2")
    if cfg.executor.processes != "auto" and cfg.executor.processes < 1:
        raise typed_config.ConfigError("executor.processes: must be >= 1 or auto")
    if cfg.input.shard_size < 1:
        raise typed_config.ConfigError("input.shard_size: must be >= 1")
    check_kmeans(cfg.kmeans)
    _check_network_settings(cfg.download)
    return cfg


def _check_network_settings(d: DownloadConfig) -> None:
    for net in d.deny_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as err:
            raise typed_config.ConfigError(f"download.deny_networks: {err}") from None
    if d.proxy:
        try:
            p = urllib.parse.urlsplit(d.proxy)
            ok = p.scheme in ("http", "https") and p.hostname and p.port
        except ValueError:
            ok = False
        if not ok:
            raise typed_config.ConfigError(f"download.proxy: expected http://host:port, got {d.proxy!r}")
