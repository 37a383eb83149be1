"""The pipeline as separately callable tasks, for orchestrators (the Airflow DAG in ``dags/``).

``regionset build`` runs every step in one process; an orchestrator runs the same steps as tasks:
``prepare_build`` (shard the input, write lineage) -> ``run_stage_shard`` per step × shard ->
``run_global`` for global steps -> ``finalize`` (run record, catalog) -> ``committed_outputs`` (what the
DAG announces as Assets); ``train_on_build`` trains on one build. Every task is idempotent: a
stage shard whose completion marker matches is skipped, so retries and re-runs do nothing extra;
global steps skip their own finished work the same way they do under ``build``.

This module imports nothing heavy at top level (DAG files import it at parse time); the pipeline
modules load inside each call. The DAG is drawn from ``regionset.pipelines.steps.PIPELINE``; a step that a
build does not include (not in ``steps``) runs as a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regionset.pipelines.steps import GLOBAL, SHARD  # noqa: F401  (the DAG file reads them here)
from regionset.pipelines.steps import PIPELINE as DAG_STEPS  # noqa: F401

if TYPE_CHECKING:
    from regionset.pipelines.core.output import Output


def load(config_path: str | None, overrides: list[str] | None = None):
    """The BuildConfig of a YAML file plus ``key=value`` overrides (progress bars off).

    Args:
        config_path: path of the build config; empty or None: the defaults plus ``overrides``.
        overrides: ``key=value`` overrides.
    """
    from regionset.pipelines.config import load_config

    return load_config(config_path or None, ["progress=false", *(overrides or [])])


def _step(cfg, name: str):
    from regionset.pipelines.definition import build_steps

    return next((s for s in build_steps(cfg) if s.name == name), None)


def _shards(out: Output) -> list[int]:
    from regionset.pipelines.core.shards import list_shards
    from regionset.schemas import INPUT

    return list_shards(out, INPUT)  # where shard_input writes them


def _run_lock(cfg, out: Output, run_id: str):
    return out.lock(run_id=run_id, lease_seconds=cfg.lease_seconds) if out.is_remote else out.lock(run_id=run_id)


@contextmanager
def run_holds(cfg, out: Output, run_id: str | None, release: bool = False) -> Iterator[None]:
    """In a task of an orchestrator run: check that the run still holds the output's lock (renewing an
    object-store lease while the task runs) and fence the task's commits by it; ``LockedError`` (exit
    2) naming the holder when it does not. Nothing without a ``run_id`` or with ``output_lock: none``.

    Args:
        cfg: the build config.
        out: the build's output.
        run_id: the run's id (Airflow's ``run_id``), or None.
        release: give the lock back at the end (the run's last task).
    """
    if not run_id or cfg.output_lock == "none":
        yield
        return
    lock = _run_lock(cfg, out, run_id).adopt()
    try:
        yield
    except BaseException:
        lock.detach()
        raise
    if release:
        lock.release()
    else:
        lock.detach()


def prepare_build(config_path: str, overrides: list[str] | None = None, run_id: str | None = None) -> list[int]:
    """Shard the input and write the lineage; return the shard ids (what per-shard tasks map over).

    Args:
        config_path: path of the build config.
        overrides: ``key=value`` overrides.
        run_id: an orchestrator run's id: the run takes the output's lock under it and keeps it after
            this task (its tasks check it, ``finalize`` releases it); None: held for this task only.
    """
    from regionset.pipelines.build import begin_build, make_output  # the same start ``build`` makes
    from regionset.pipelines.core.inputs import shard_input
    from regionset.pipelines.definition import build_steps
    from regionset.pipelines.preflight.run import run_preflight

    cfg = load(config_path, overrides)
    run_preflight(cfg)  # as ``regionset build``: before any work and before the lock
    out = make_output(cfg.output)  # the task's one Output
    if not run_id or cfg.output_lock == "none":
        with out.lock():  # only this task writes the input shards; stage tasks run lock-free
            begin_build(cfg, build_steps(cfg), announce=False, out=out)
            return shard_input(cfg.input, out)
    from regionset.pipelines.core.lock import LockedError

    lock = _run_lock(cfg, out, run_id)
    try:
        lock.adopt()  # a retry of this task: the run holds it already
    except LockedError:
        lock.__enter__()  # LockedError naming the holder when another build or run has it
    try:
        begin_build(cfg, build_steps(cfg), announce=False, out=out)
        shards = shard_input(cfg.input, out)
    except BaseException:
        lock.release()
        raise
    lock.detach()  # the run keeps it
    return shards


def run_stage_shard(config_path: str, stage_name: str, shard: int, overrides: list[str] | None = None,
                    run_id: str | None = None) -> dict:
    """Run one stage on one shard in this process, unless its marker says it is done.

    Args:
        config_path: path of the build config.
        stage_name: a per-shard step of ``DAG_STEPS``.
        shard: the shard id.
        overrides: ``key=value`` overrides.
        run_id: the orchestrator run holding the lock (``run_holds``), or None.

    Returns:
        ``status`` (``done``, ``complete``: already done, ``waiting``: an input is missing,
        ``absent``: not in this build) with the marker's rows and counters when done.
    """
    from regionset.pipelines.core.shard_run import StageReport, plan_stage, run_shard

    cfg = load(config_path, overrides)
    stage = _step(cfg, stage_name)
    if stage is None or not hasattr(stage, "process"):
        return {"stage": stage_name, "shard": shard, "status": "absent"}
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)  # the task's one Output
    report = StageReport(stage_name)
    with run_holds(cfg, out, run_id):
        tasks = plan_stage(stage, out, [shard], report)
        if not tasks:
            return {"stage": stage_name, "shard": shard, "status": "waiting" if report.waiting else "complete"}
        marker = run_shard(stage, out, tasks[0])
    return {"stage": stage_name, "shard": shard, "status": "done", "rows_in": marker.rows_in,
            "rows_out": marker.rows_out, "counters": marker.counters}


def run_stage_all(config_path: str, stage_name: str, overrides: list[str] | None = None,
                  run_id: str | None = None) -> dict:
    """Run one stage on every shard of the build through the configured executor (``executor.name``).

    The orchestrator's task is then a driver: with ``executor.name=ray`` and ``executor.ray.address``
    the shards run on the Ray cluster, not as one orchestrator task each. Complete shards are skipped.

    Args:
        config_path: path of the build config.
        stage_name: a per-shard step of ``DAG_STEPS``.
        overrides: ``key=value`` overrides.
        run_id: the orchestrator run holding the lock (``run_holds``), or None.

    Returns:
        ``status`` (``done`` or ``absent``), the executor's name and the stage's totals.
    """
    from regionset.pipelines.executors.factory import make_executor

    cfg = load(config_path, overrides)
    stage = _step(cfg, stage_name)
    if stage is None or not hasattr(stage, "process"):
        return {"stage": stage_name, "status": "absent"}
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)  # the task's one Output
    executor = make_executor(cfg.executor, cfg.progress)
    try:
        with run_holds(cfg, out, run_id):
            report = executor.run_stage(stage, out, _shards(out))
    finally:
        getattr(executor, "close", lambda: None)()
    return {"stage": stage_name, "status": "done", "executor": executor.name, "done": report.done,
            "skipped": report.skipped, "waiting": report.waiting, "rows_in": report.rows_in,
            "rows_out": report.rows_out, "counters": dict(report.counters)}


def run_global(config_path: str, name: str, overrides: list[str] | None = None,
               run_id: str | None = None) -> dict[str, Any]:
    """Run one global step (e.g. ``fit_kmeans``) over every shard of the build.

    Args:
        config_path: path of the build config.
        name: a global step of ``DAG_STEPS``.
        overrides: ``key=value`` overrides.
        run_id: the orchestrator run holding the lock (``run_holds``), or None.
    """
    cfg = load(config_path, overrides)
    step = _step(cfg, name)
    if step is None or not hasattr(step, "run"):
        return {"step": name, "status": "absent"}
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)  # the task's one Output
    from regionset.pipelines.build import run_global_step
    from regionset.pipelines.executors.factory import make_executor

    with run_holds(cfg, out, run_id), make_executor(cfg.executor, cfg.progress) as executor:
        summary = run_global_step(step, out, _shards(out), executor)  # a global step never makes its own
    return {"step": name, "status": "done", **summary}


def finalize(config_path: str, overrides: list[str] | None = None, executor: str = "airflow",
             run_id: str | None = None) -> str:
    """Record the run and rebuild the catalog; return the catalog's path; release the run's lock.

    The run record (``OUT/_state/runs/<run_id>.json``) is named by ``run_id`` when there is one, so the
    orchestrator's run id is the build run's id (asset events and training lineage name it).

    Args:
        config_path: path of the build config.
        overrides: ``key=value`` overrides.
        executor: the name recorded in the run record.
        run_id: the orchestrator run holding the lock (``run_holds``), or None.
    """
    from regionset.pipelines.build import finish_build  # the same finish ``build`` makes

    cfg = load(config_path, overrides)
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)
    with run_holds(cfg, out, run_id, release=True):
        return str(finish_build(cfg, time.time(), executor, _shards(out), run_id=run_id, out=out))


def train(kind: str, config_path: str, overrides: list[str] | None = None) -> None:
    """Train RICE or Croc off the build's ``train/`` shards, through the CLI (which owns training).

    Args:
        kind: ``rice`` or ``croc``.
        config_path: the training config.
        overrides: ``key=value`` overrides of the training config.
    """
    from regionset.pipelines.cli import main

    rc = main(["train", kind, config_path, *(overrides or [])])
    if rc:
        raise RuntimeError(f"regionset train {kind} {config_path} failed with exit code {rc}")


def committed_outputs(config_path: str, overrides: list[str] | None = None, run_id: str | None = None) -> dict:
    """What a finished build committed, for an orchestrator to announce (the DAG's asset events).

    ``committed`` is true when every per-shard step of the build has a completion marker for every
    shard and the run's record is there; a partial build (a shard waiting or failed) is not committed.

    Args:
        config_path: path of the build config.
        overrides: ``key=value`` overrides.
        run_id: the run whose record must be there (None: not checked).

    Returns:
        ``output``, ``train`` and ``regions`` (URLs or absolute paths), ``run_id``, ``config_hash``,
        ``shards``, ``rows`` (``train``, ``regions``), ``committed`` and ``missing`` (step -> shards
        without a marker).
    """
    from regionset.pipelines.core.lineage import config_digest
    from regionset.pipelines.core.output import Output
    from regionset.pipelines.definition import GlobalStep, build_steps
    from regionset.pipelines.tools.status import collect_status
    from regionset.schemas.tables import REGIONS, TRAIN

    cfg = load(config_path, overrides)
    out = Output(cfg.output)
    status = collect_status(out)
    steps = [s for s in build_steps(cfg) if not isinstance(s, GlobalStep)]
    done = {name: st["done"] for name, st in status["stages"].items()}
    missing = {s.name: status["shards"] - done.get(s.name, 0) for s in steps if done.get(s.name, 0) < status["shards"]}
    recorded = not run_id or (out.state / "runs" / f"{run_id}.json").exists()
    writers = {table: {s.name for s in steps if str(s.output).split("/")[0] == table} for table in (TRAIN, REGIONS)}
    rows = {table: sum(st["rows_out"] for name, st in status["stages"].items() if name in names)
            for table, names in writers.items()}  # regions: detect's object + ocr's text rows (or the fused step's)
    root = str(out) if out.is_remote else str(Path(str(out)).resolve())
    return {"output": root, "train": f"{root}/{TRAIN}", "regions": f"{root}/{REGIONS}", "run_id": run_id,
            "config_hash": config_digest(cfg), "shards": status["shards"], "rows": rows,
            "committed": bool(status["shards"]) and not missing and recorded, "missing": missing}


def train_on_build(kind: str, config_path: str, overrides: list[str] | None, train_url: str, build_run: str,
                   out_dir: str) -> dict:
    """Train RICE or Croc on one build's ``train/`` shards, naming that build run in the lineage.

    Args:
        kind: ``rice`` or ``croc``.
        config_path: the training config (empty: the kind's defaults).
        overrides: ``key=value`` overrides of the training config, applied before the three below.
        train_url: the build's ``train/`` folder (a path or URL).
        build_run: the build run's id (its record under ``OUT/_state/runs/`` must exist).
        out_dir: where checkpoints go (``loop.out_dir``; a path or URL; empty: the config's).

    Returns:
        ``kind``, ``out_dir``, ``train_dir`` and ``build_run``.
    """
    pinned = [f"data.train_dir={train_url}", f"data.build_run={build_run}", *([f"loop.out_dir={out_dir}"] if out_dir else [])]
    train(kind, config_path, [*(overrides or []), *pinned])  # through the CLI, which owns training
    return {"kind": kind, "out_dir": out_dir, "train_dir": train_url, "build_run": build_run}
