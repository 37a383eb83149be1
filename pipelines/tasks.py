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


def load_run(config_path: str | None, overrides: list[str] | None = None, run_id: str | None = None):
    """The BuildConfig a task of orchestrator run ``run_id`` works with: the copy ``prepare`` pinned
    under the output (``core/run_config.py``), after checking that this task's own view of
    ``config_path`` + ``overrides`` still resolves to it; without a ``run_id``, that view.

    Args:
        config_path: path or URL of the build config; empty or None: the defaults plus ``overrides``.
        overrides: ``key=value`` overrides.
        run_id: the orchestrator run's id, or None.

    Raises:
        LockedError: no config pinned for the run and the run does not hold the output's lock.
        ConfigChangedError: one line naming the run and both hashes (the config changed mid-run).
    """
    cfg = load(config_path, overrides)
    if not run_id:
        return cfg
    from regionset.pipelines.core.output import Output
    from regionset.pipelines.core.run_config import check_pinned, pinned_hash

    out = Output(cfg.output)
    if pinned_hash(out, run_id) is None:  # not this run's output: a run not holding it hears that first
        with run_holds(cfg, out, run_id):
            pass
    return load(check_pinned(out, run_id, cfg))


def map_items(shards: list[int], per_shard: bool, max_map_length: int, shards_per_task: int = 0) -> list:
    """What an orchestrator's per-shard tasks map over: the shard ids while they fit in
    ``max_map_length`` mapped tasks, else lists of consecutive shard ids (``core/shard_batches.py``);
    ``[None]`` when not per shard (one task per stage, over every shard).

    Args:
        shards: the build's shard ids (``prepare_build``).
        per_shard: one mapped task per shard (or batch of shards).
        max_map_length: the most items a mapped task may have (Airflow's ``[core] max_map_length``).
        shards_per_task: shards per mapped task (0: 1 while they fit, else the fewest that fit).
    """
    from regionset.pipelines.core.shard_batches import batch_shards

    if not per_shard:
        return [None]
    batches = batch_shards(list(shards), max_map_length, shards_per_task)
    return [b[0] for b in batches] if all(len(b) == 1 for b in batches) else batches


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
            this task (its tasks check it, ``finalize`` releases it), and the resolved config is pinned
            under ``OUT/_state/runs/<run>/`` for every later task (``load_run``); None: the lock is
            held for this task only.
    """
    from regionset.pipelines.build import begin_build, make_output  # the same start ``build`` makes
    from regionset.pipelines.core.inputs import shard_input
    from regionset.pipelines.core.run_config import pin_config
    from regionset.pipelines.definition import build_steps
    from regionset.pipelines.preflight.run import run_preflight

    cfg = load(config_path, overrides)
    run_preflight(cfg)  # as ``regionset build``: before any work and before the lock
    out = make_output(cfg.output)  # the task's one Output
    if not run_id or cfg.output_lock == "none":
        with out.lock():  # only this task writes the input shards; stage tasks run lock-free
            if run_id:
                pin_config(out, run_id, cfg)
            begin_build(cfg, build_steps(cfg), announce=False, out=out)
            return shard_input(cfg.input, out)
    from regionset.pipelines.core.lock import LockedError

    lock = _run_lock(cfg, out, run_id)
    try:
        lock.adopt()  # a retry of this task: the run holds it already
    except LockedError:
        lock.__enter__()  # LockedError naming the holder when another build or run has it
    try:
        pin_config(out, run_id, cfg)  # every later task of the run checks its view against this copy
        begin_build(cfg, build_steps(cfg), announce=False, out=out)
        shards = shard_input(cfg.input, out)
    except BaseException:
        lock.release()
        raise
    lock.detach()  # the run keeps it
    return shards


def run_stage_shard(config_path: str, stage_name: str, shard: int | list[int], overrides: list[str] | None = None,
                    run_id: str | None = None) -> dict:
    """Run one stage on one shard (or a batch of shards, in sequence) in this process, skipping every
    shard whose marker says it is done (a retried batch redoes only its unfinished shards).

    Args:
        config_path: path or URL of the build config.
        stage_name: a per-shard step of ``DAG_STEPS``.
        shard: the shard id, or a list of them (``map_items`` above ``max_map_length``).
        overrides: ``key=value`` overrides.
        run_id: the orchestrator run holding the lock (``run_holds``) and the pinned config, or None.

    Returns:
        ``status`` (``done``, ``complete``: already done, ``waiting``: an input is missing,
        ``absent``: not in this build) with the marker's rows and counters when done; for a batch,
        ``shards`` and the counts ``done``, ``skipped``, ``waiting`` with the rows of the shards done.
    """
    from regionset.pipelines.core.shard_run import StageReport, plan_stage, run_shard

    cfg = load_run(config_path, overrides, run_id)
    stage = _step(cfg, stage_name)
    batch = list(shard) if isinstance(shard, list | tuple) else None
    if stage is None or not hasattr(stage, "process"):
        return {"stage": stage_name, "shard": shard, "status": "absent"}
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)  # the task's one Output
    report = StageReport(stage_name)
    with run_holds(cfg, out, run_id):
        tasks = plan_stage(stage, out, batch if batch is not None else [shard], report)
        markers = [run_shard(stage, out, t) for t in tasks]  # in shard order, each committed by its marker
    if batch is not None:
        return {"stage": stage_name, "shards": batch, "status": "done" if markers else "complete",
                "done": len(markers), "skipped": report.skipped, "waiting": report.waiting,
                "rows_in": sum(m.rows_in for m in markers), "rows_out": sum(m.rows_out for m in markers)}
    if not markers:
        return {"stage": stage_name, "shard": shard, "status": "waiting" if report.waiting else "complete"}
    marker = markers[0]
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

    cfg = load_run(config_path, overrides, run_id)
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
    cfg = load_run(config_path, overrides, run_id)
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

    cfg = load_run(config_path, overrides, run_id)
    from regionset.pipelines.core.output import Output

    out = Output(cfg.output)
    with run_holds(cfg, out, run_id, release=True):
        return str(finish_build(cfg, time.time(), executor, _shards(out), run_id=run_id, out=out))


class TrainOutDirError(ValueError):
    """The DAG's training output would land on the worker's own disk."""


def train(kind: str, config_path: str, overrides: list[str] | None = None, build_config: str = "",
          build_overrides: list[str] | None = None, run_id: str | None = None, out_dir: str = "") -> str:
    """Train RICE or Croc off the build's ``train/`` shards, through the CLI (which owns training);
    return where its output went.

    An orchestrator's task runs on any worker: its output must go where the next task or a person
    finds it, so ``loop.out_dir`` (``out_dir`` when given, else the training config's) must be a URL
    (``s3://…``) or an absolute path (a shared mount); a relative one is refused in one line. With a
    ``run_id`` the build's output (from the run's pinned config) is the default ``data.train_dir``.

    Args:
        kind: ``rice`` or ``croc``.
        config_path: the training config (a path or URL).
        overrides: ``key=value`` overrides of the training config (they win over the two below).
        build_config: the build's config path or URL (with ``run_id``).
        build_overrides: the build's overrides.
        run_id: the orchestrator run whose build is trained on, or None.
        out_dir: ``loop.out_dir`` for this run (empty: the training config's).

    Raises:
        TrainOutDirError: ``loop.out_dir`` is relative.
        ConfigChangedError: the build's config changed since the run pinned it.
    """
    from regionset.common.storage import as_path, is_remote
    from regionset.pipelines.cli import main, run_training

    base = []
    if run_id:
        base.append(f"data.train_dir={load_run(build_config, build_overrides, run_id).output}")
    if out_dir:
        base.append(f"loop.out_dir={out_dir}")
    args = [*base, *(overrides or [])]
    resolved = str(run_training(kind, config_path or None, args, dry_run=True)["out_dir"])
    if not (is_remote(resolved) or as_path(resolved).is_absolute()):
        raise TrainOutDirError(
            f"train {kind}: loop.out_dir {resolved!r} is relative: on a worker it lands on that worker's "
            "disk; set it to a URL (s3://...) or an absolute shared path (DAG param train_out_dir)")
    rc = main(["train", kind, config_path, *args])
    if rc:
        raise RuntimeError(f"regionset train {kind} {config_path} failed with exit code {rc}")
    return resolved


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

    cfg = load_run(config_path, overrides, run_id)
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
    pinned = [f"data.train_dir={train_url}", f"data.build_run={build_run}"]
    where = train(kind, config_path, [*(overrides or []), *pinned], out_dir=out_dir)  # through the CLI
    return {"kind": kind, "out_dir": where, "train_dir": train_url, "build_run": build_run}
