"""``regionset build``: shard the input, run every step with the chosen executor, refresh the catalog."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regionset.common import store_retry, threads
from regionset.common.typed_config import ConfigError, config_warnings
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.catalog import build_catalog
from regionset.pipelines.core.cleanup import clean_temp_files
from regionset.pipelines.core.failpoints import failpoint
from regionset.pipelines.core.inputs import shard_input
from regionset.pipelines.core.lineage import append_run, config_digest, new_run_id, write_lineage
from regionset.pipelines.core.live import live_watchers, notify
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.outputs import global_outputs
from regionset.pipelines.core.progress import console, print_table
from regionset.pipelines.core.shard_run import StageReport, check_not_waiting
from regionset.pipelines.core.shards import forget_sha256
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.executors.factory import make_executor
from regionset.pipelines.preflight.probe import probe_workers
from regionset.pipelines.preflight.run import run_preflight


@dataclass
class BuildResult:
    """What a build did: per-stage reports and global-step summaries."""

    out: Output
    shards: list[int]
    reports: list[StageReport] = field(default_factory=list)
    globals: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    seconds: float = 0.0
    input_counters: dict[str, int] = field(default_factory=dict)
    store_retries: dict[str, int] = field(default_factory=dict)  # object-store retries by reason (common/store_retry.py)


def make_output(path: str | Output) -> Output:
    """The build's one ``Output``; create its folder (a path that is a file, or under one, is a
    ConfigError naming it)."""
    out = Output.of(path)
    if out.is_remote:
        return out  # folders are implicit on object stores; preflight checked the bucket
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output: {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"output: cannot create {out}: {err.strerror or err}") from None
    return out


def model_lineage(steps: list) -> tuple[dict[str, Any], list[str]]:
    """(models by stage, warnings) from each stage's ``lineage()``, for ``regionset.yaml``.

    Args:
        steps: the build's steps (global steps carry no model lineage).
    """
    models: dict[str, Any] = {}
    warnings: list[str] = []
    for step in steps:
        if isinstance(step, GlobalStep):
            continue
        meta = dict(step.lineage())
        warnings.extend(meta.pop("warnings", []))
        if meta:
            models[step.name] = meta
    return models, warnings


def begin_build(cfg: BuildConfig, steps: list, announce: bool = True, out: Output | None = None) -> list[str]:
    """What every build does first, holding the lock: drop temp files a killed writer left, write
    ``regionset.yaml`` (config, versions, models, warnings); return the warnings.

    Args:
        cfg: the resolved build config.
        steps: the build's steps.
        announce: print the warnings (random weights, ...) on the console.
        out: the build's ``Output`` (default: one made from ``cfg.output``).
    """
    out = Output.of(out if out is not None else cfg.output)
    forget_sha256()  # remembered object-store hashes are this build's own, never an earlier process's
    # a fused step (``regions``) writes its parts' tables under their markers, not its own
    producers = {p.output: p.name for s in steps if not isinstance(s, GlobalStep)
                 for p in (getattr(s, "parts", None) or (s,))}
    clean_temp_files(out, producers, global_outputs())
    out.load_committed(producers)  # object stores: input hashes from the markers' index, no GET per shard
    models, warnings = model_lineage(steps)
    warnings = [*config_warnings(cfg), *warnings]  # deprecated config keys (common/typed_config.py)
    if announce:
        for w in warnings:
            console.print(f"[bold red]WARNING[/]: {w}")
    write_lineage(out, cfg, models, warnings)
    return warnings


def finish_build(cfg: BuildConfig, started_at: float, executor: str, shards: list[int],
                 run_id: str | None = None, out: Output | None = None,
                 store_retries: dict[str, int] | None = None) -> Path:
    """What every build does last: append the run record and rebuild the catalog; return its path.

    Args:
        cfg: the resolved build config.
        started_at: when the run started (epoch seconds).
        executor: the executor's name, for the run record.
        shards: the build's shard ids.
        run_id: the run's id (default: a new one from ``started_at``).
        out: the build's ``Output`` (default: one made from ``cfg.output``).
        store_retries: object-store retries of the run by reason, for the run record.
    """
    out = Output.of(out if out is not None else cfg.output)
    append_run(out, {
        "run_id": run_id or new_run_id(started_at), "started_at": started_at, "finished_at": time.time(),
        "status": "success", "config_hash": config_digest(cfg), "executor": executor,
        "argv": " ".join(sys.argv), "pid": os.getpid(), "shards": len(shards),
        "store_retries": dict(sorted((store_retries or {}).items())),
    })
    return build_catalog(out)


def run_global_step(step: GlobalStep, out: Output, shards: list[int], executor: Executor) -> dict[str, Any]:
    """Run one global step in this process with the driver's whole thread share, whatever the
    in-process stages before it set (its floating-point results then do not depend on them).

    Args:
        step: the global step (its config section bound by ``build_steps``).
        out: the output folder.
        shards: the build's shard ids.
        executor: the build's executor, to spread independent tasks on.
    """
    threads.apply(threads.worker_share())
    t0 = time.perf_counter()
    summary = dict(step.run(out, executor, shards))
    summary.setdefault("seconds", round(time.perf_counter() - t0, 3))
    return summary


def output_lock(cfg: BuildConfig, out: Output) -> Any:
    """The build's single-writer lock, or nothing (warned loudly) with ``output_lock: none``.

    Args:
        cfg: the resolved build config.
        out: the build's output.
    """
    if cfg.output_lock == "none":
        console.print(f"[bold red]WARNING[/] output_lock: none: {out} is built with NO lock; a second build "
                      "on it at the same time can corrupt it (use only for a store without conditional writes)")
        return nullcontext()
    return out.lock(lease_seconds=cfg.lease_seconds) if out.is_remote else out.lock()


def build(cfg: BuildConfig, executor: Executor | None = None, out: Output | None = None) -> BuildResult:
    """Run the pipeline of ``cfg`` into ``cfg.output``; resumable and idempotent.

    Args:
        cfg: the resolved build config.
        executor: an executor instance (the caller closes it); by default the one ``cfg.executor``
            names, closed when the build ends, however it ends.
        out: the ``Output`` of ``cfg.output`` when the caller made it already (default: made here).
    """
    store_retry.take_retry_counts()  # this process's retries from here on are this build's
    for check in run_preflight(cfg):  # before any work and before the lock: exit 2 naming the key (docs/cluster.md)
        if check.status == "warn":
            console.print(f"[bold yellow]warning[/] ({check.key}): {check.detail}")
    out = make_output(out if out is not None else cfg.output)  # the build's one Output
    start = time.time()
    with output_lock(cfg, out), (nullcontext(executor) if executor else make_executor(cfg.executor, cfg.progress)) as ex:
        if ex.name != "local":  # every node builds with what the driver has, and sees the output: exit 2 if not
            checks = probe_workers(cfg, out, ex)
            if cfg.progress:
                console.print(f"[dim]{checks[0].detail}[/]", soft_wrap=True)
        steps = build_steps(cfg)
        begin_build(cfg, steps, out=out)
        input_counters: Counter = Counter()
        shards = shard_input(cfg.input, out, input_counters)
        result = BuildResult(out, shards, input_counters=dict(input_counters))
        outputs = {s.name: s.output for s in steps if not isinstance(s, GlobalStep)}
        written: dict[str, str] = {}  # shard folders written by the stages run so far -> stage
        costs = {s.name: s.cost for s in steps if isinstance(s, GlobalStep)}  # global steps in the ETA
        with live_watchers(ex, out, outputs, len(shards), cfg.metrics, cfg.progress, costs):  # ETA, metrics.port
            for step in steps:
                if isinstance(step, GlobalStep):
                    failpoint(f"global:{step.name}")
                    notify(ex, "step_started", step.name)
                    summary = run_global_step(step, out, shards, ex)
                    notify(ex, "step_done", step.name, float(summary.get("seconds", 0.0)))
                    result.globals[step.name] = summary
                else:
                    result.reports.append(ex.run_stage(step, out, shards))
                    check_not_waiting(step, result.reports[-1], written)  # exit 1: never an empty "success"
                    written[step.output] = step.name
                result.order.append(step.name)
        result.seconds = time.time() - start
        retries = Counter(store_retry.take_retry_counts())  # the driver's; shards' come in their markers
        for r in result.reports:
            retries.update(r.store_retries)
        finish_build(cfg, start, ex.name, shards, out=out, store_retries=dict(retries))
        retries.update(store_retry.take_retry_counts())  # the run record's and the catalog's own
        result.store_retries = dict(sorted(retries.items()))
    if cfg.progress:
        print_summary(result)
    return result


def print_summary(result: BuildResult) -> None:
    """Summary table: per stage shards done/skipped, rows in/out, seconds, failures by reason."""
    reports = {r.stage: r for r in result.reports}
    rows = []
    for name in result.order:
        if name in reports:
            r = reports[name]
            rows.append([r.stage, r.done, r.skipped, r.waiting, r.rows_in, r.rows_out, f"{r.seconds:.1f}"])
        else:
            rows.append([name, "global", "", "", "", "", f"{result.globals[name].get('seconds', 0):.1f}"])
    print_table(f"regionset build: {result.out} ({len(result.shards)} shards, {result.seconds:.1f} s)",
                ["step", "done", "skipped", "waiting", "rows in", "rows out", "seconds"], rows)
    counts = [["input", *k.split(":", 1), v] for k, v in sorted(result.input_counters.items())]
    counts += [[r.stage, *k.split(":", 1), v] for r in result.reports for k, v in sorted(r.counters.items())
              if ":" in k]
    counts += [[name, "summary", k, v] for name, g in result.globals.items() for k, v in g.items()
               if k != "seconds" and not isinstance(v, list | dict)]
    if counts:
        print_table("counters (this run): statuses, drops and failures by reason",
                    ["step", "kind", "reason", "count"], counts)
    if result.store_retries:
        print_table("object-store retries (this run) by reason", ["reason", "retries"],
                    sorted(result.store_retries.items()))
