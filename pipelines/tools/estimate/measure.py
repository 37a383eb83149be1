"""The measuring half of ``regionset estimate``: run the configured pipeline on a sample of the input
into a temporary output and record its unit costs (the dict ``projection.project`` reads).

The sample runs on the local executor in this process (``executor.processes`` = 1, every core of
this machine for one worker), so its CPU seconds are this process's (``getrusage``), per step: a
``MeteredExecutor`` wraps the real one and reads the clock and the CPU counters around each
``run_stage``; what the process spends between two shard stages is the global steps' between them.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from regionset.pipelines.build import build
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.inputs import InputError, iter_urls
from regionset.pipelines.core.metrics import MetricsConfig
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask, StageReport
from regionset.pipelines.core.shards import Marker, read_marker
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.executors.local import LocalExecutor
from regionset.schemas.tables import KMEANS
from regionset.stages.assign import BEAM_MIN_LEAVES
from regionset.stages.base import Stage
from regionset.stages.embed import EmbedStage


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class MeteredExecutor(Executor):
    """Delegates to ``inner`` and records (stage, wall seconds, CPU seconds, start, end) per
    ``run_stage``: what ``measure_sample`` divides by the units.

    Args:
        inner: the executor that does the work.
    """

    def __init__(self, inner: Executor) -> None:
        super().__init__(inner.show_progress)
        self.inner, self.name = inner, inner.name
        self.spans: list[dict[str, Any]] = []

    def run_stage(self, stage: Stage, out: Output, shards: list[int]) -> StageReport:
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = self.inner.run_stage(stage, out, shards)
        self.spans.append({"stage": stage.name, "wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0,
                           "t0": t0, "c0": c0, "t1": time.perf_counter(), "c1": cpu_seconds()})
        return report

    def run_tasks(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        return self.inner.run_tasks(stage, out, tasks)

    def iter_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        return self.inner.iter_calls(fn, jobs)

    def close(self) -> None:
        self.inner.close()


def write_sample(cfg: BuildConfig, size: int, folder: Path) -> tuple[Path, int]:
    """The first ``size`` URLs of the input as ``folder/sample.parquet``; (path, URLs written)."""
    urls, caps = [], []
    for url, cap in iter_urls(cfg.input):
        urls.append(url)
        caps.append(cap)
        if len(urls) >= size:
            break
    if not urls:
        raise InputError(f"no URLs in {cfg.input.path}")
    path = folder / "sample.parquet"
    pq.write_table(pa.table({"url": pa.array(urls, pa.string()), "caption": pa.array(caps, pa.string())}), path)
    return path, len(urls)


def sample_config(cfg: BuildConfig, urls: Path, out: Path, images: int) -> BuildConfig:
    """``cfg`` pointed at the sample: local executor in this process, no progress bars nor metrics
    endpoint, the same shard size (capped at the sample), and ``kmeans.levels: auto`` when the
    configured tree has more leaves than the sample has images (it could not be fitted on the
    sample; the projection still uses the configured levels)."""
    inp = dataclasses.replace(cfg.input, path=str(urls), format="parquet", url_col="url", caption_col="caption",
                              shard_size=min(cfg.input.shard_size, images))
    km = cfg.kmeans
    if km.levels != "auto" and _prod(km.levels) > images:
        km = dataclasses.replace(km, levels="auto")
    return dataclasses.replace(cfg, output=str(out), input=inp, progress=False, kmeans=km, metrics=MetricsConfig(),
                               executor=dataclasses.replace(cfg.executor, name="local", processes=1))


def _prod(xs: tuple[int, ...]) -> int:
    return math.prod(xs)


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) of the Parquet shards under ``folder`` (recursively)."""
    files = [p for p in folder.rglob("part-*.parquet")] if folder.is_dir() else []
    return sum(p.stat().st_size for p in files), len(files)


def measure_sample(cfg: BuildConfig, size: int, keep: Path | None = None) -> dict[str, Any]:
    """Run ``cfg`` on its first ``size`` URLs in a temporary output (removed after, unless ``keep``)
    and return the unit costs.

    Args:
        cfg: the resolved build config.
        size: URLs to sample (the first ``size`` of the input).
        keep: an existing folder to build the sample into and keep (tests, benchmarks).
    """
    tmp = Path(tempfile.mkdtemp(prefix="regionset-estimate-"))
    try:
        urls, n = write_sample(cfg, size, tmp)
        out = Path(keep) if keep is not None else tmp / "out"
        scfg = sample_config(cfg, urls, out, n)
        metered = MeteredExecutor(LocalExecutor(1, show_progress=False))
        t0, c0 = time.perf_counter(), cpu_seconds()
        with metered:
            result = build(scfg, executor=metered)
        total_wall, total_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        costs = unit_costs(scfg, result, metered.spans, n, total_wall, total_cpu)
        # the projected build runs the configured shard size and tree, whatever the sample needed
        costs["shard_size"] = cfg.input.shard_size
        costs["kmeans"]["levels"] = list(cfg.kmeans.levels) if cfg.kmeans.levels != "auto" else "auto"
        return costs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unit_costs(cfg: BuildConfig, result: Any, spans: list[dict[str, Any]], images: int, total_wall: float,
               total_cpu: float) -> dict[str, Any]:
    """The recorded unit costs of a finished sample build (see ``projection.project``)."""
    out = Path(os.fspath(result.out))  # the sample's output is a local folder
    steps = {s.name: s for s in build_steps(cfg)}
    by_stage = {s["stage"]: s for s in spans}
    stages: dict[str, dict[str, Any]] = {}
    for name in result.order:
        step = steps[name]
        if isinstance(step, GlobalStep):
            g = result.globals.get(name, {})
            stages[name] = {"kind": "global", "wall_s": float(g.get("seconds", 0.0)), "cpu_s": 0.0, "units": images,
                            "unit": "image", "gpu_s": 0.0}
            continue
        markers = [m for s in result.shards if (m := read_marker(out, name, s)) is not None]
        span = by_stage[name]
        rows_in = sum(m.rows_in for m in markers)
        work, warm = steady_seconds(markers)
        on_gpu = step.device().startswith("cuda")
        stages[name] = {"kind": "shard", "units": rows_in, "rows_out": sum(m.rows_out for m in markers),
                        "unit": "image" if rows_in <= images else "region", "wall_s": work,
                        "setup_s": max(span["wall_s"] - work, 0.0), "warmup_s": warm, "cpu_s": span["cpu_s"],
                        "gpu_s": work if on_gpu else 0.0, "inputs": list(step.inputs), "output": step.output}
    _global_cpu(stages, result.order, spans)
    tables: dict[str, dict[str, Any]] = {}
    for st in stages.values():
        if st["kind"] == "shard":
            nbytes, files = folder_bytes(out / st["output"])
            tables[st["output"]] = {"bytes": nbytes, "files": files, "rows": st["rows_out"], "per_shard": True}
    if (out / KMEANS).is_dir():
        kfiles = [p for p in (out / KMEANS).rglob("*") if p.is_file()]
        tables[KMEANS] = {"bytes": sum(p.stat().st_size for p in kfiles), "files": len(kfiles), "per_shard": False}
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    embedded = stages.get("embed", {}).get("rows_out", 0)
    return {
        "sample_images": images, "regions_per_image": embedded / max(images, 1), "cores": os.cpu_count() or 1, "shard_size": cfg.input.shard_size,
        "wall_s": total_wall, "cpu_s": total_cpu, "stages": stages, "tables": tables,
        "peak_rss_mib": {"driver": round(me.ru_maxrss / 1024, 1),  # the sample's workers ran in this process
                         "worker": round(max(me.ru_maxrss, kids.ru_maxrss) / 1024, 1)},
        "dedup": {"scheme": cfg.dedup.scheme, "auto_limit": cfg.dedup.auto_limit, "halvings": cfg.dedup.halvings},
        "kmeans": {"levels": list(cfg.kmeans.levels) if cfg.kmeans.levels != "auto" else "auto",
                   "sample_size": cfg.kmeans.sample_size, "niter": cfg.kmeans.niter,
                   "refine_iters": cfg.kmeans.refine_iters, "dim": EmbedStage(cfg.embed).dim,
                   "fit": cfg.kmeans.fit, "local_max_mib": cfg.kmeans.local_max_mib,
                   "search": cfg.assign.search, "beam": cfg.assign.beam, "beam_min_leaves": BEAM_MIN_LEAVES},
    }


def steady_seconds(markers: list[Marker]) -> tuple[float, float]:
    """(seconds the stage's shards would take at the steady per-row rate, warm-up seconds): the first
    shard to finish pays one-off costs inside its own time (first model calls, lazy imports), so the
    rate comes from the other shards and the first shard's excess counts as a fixed cost, paid once
    per worker (``setup_s`` of the projection). With one shard, all of it is the rate.

    Args:
        markers: the stage's markers in the sample.
    """
    if len(markers) < 2:
        return sum(m.seconds for m in markers), 0.0
    first, *rest = sorted(markers, key=lambda m: m.finished_at)
    rows = sum(m.rows_in for m in rest)
    if rows == 0:
        return sum(m.seconds for m in markers), 0.0
    per_row = sum(m.seconds for m in rest) / rows
    warm = max(first.seconds - per_row * first.rows_in, 0.0)
    return sum(m.seconds for m in markers) - warm, warm


def _global_cpu(stages: dict[str, dict[str, Any]], order: list[str], spans: list[dict[str, Any]]) -> None:
    """Give each global step the CPU the process spent between the shard stages around it (split by
    the steps' wall when several global steps sit between the same two stages)."""
    ends = {s["stage"]: s for s in spans}
    prev_c1, group = None, []
    for name in [*order, None]:
        if name is not None and stages[name]["kind"] == "global":
            group.append(name)
            continue
        if group:
            walls = sum(stages[g]["wall_s"] for g in group) or 1.0
            if name is None or prev_c1 is None:  # before the first or after the last shard stage
                gap = walls  # no span bounds it: one busy core assumed
            else:
                gap = max(ends[name]["c0"] - prev_c1, 0.0)
            for g in group:
                stages[g]["cpu_s"] = gap * stages[g]["wall_s"] / walls
            group = []
        if name is not None:
            prev_c1 = ends[name]["c1"]
