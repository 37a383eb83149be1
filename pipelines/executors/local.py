"""The embedded default executor: in-process, shard by shard, or on a pool of worker processes.

Each worker process gets an equal share of this machine's cores (``common/threads.py``): its
stage's thread pools are sized to that share (or to the stage's ``resources.cpus`` when smaller),
so N workers run about as many threads as there are cores. ``processes="auto"`` starts as many
workers as the stage's ``resources.cpus`` fits on this machine. The pool is started by the first
stage that needs one and reused by the next stages while their worker share is the same, so
workers import their libraries and load each stage's models once per build
(``pipelines/executors/worker_pool.py``); ``close()`` stops it.

A stage that uses a GPU runs instead on ``visible GPUs × N`` workers for ``resources.gpus`` = 1/N,
each pinned to its GPU (``pipelines/executors/gpus.py``); one slot in all runs in this process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

from regionset.common import threads
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask, run_shard
from regionset.pipelines.core.shards import Marker
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.executors.gpus import gpu_slots, may_use_gpu, stage_gpus, visible_gpus
from regionset.pipelines.executors.worker_pool import WorkerPool
from regionset.stages.base import Stage


def local_workers(processes: int | Literal["auto"], cpus: float, n_tasks: int, cores: int | None = None) -> int:
    """Worker processes for a stage: ``processes``, or with ``auto`` as many as ``cpus`` threads each
    fit on ``cores`` (one per core when ``cpus`` is 0); never more than the shards to do.

    Args:
        processes: ``executor.processes``.
        cpus: the stage's ``resources.cpus``.
        n_tasks: shards to do.
        cores: this machine's cores (default: ``regionset.common.threads.machine_cpus()``).
    """
    cores = cores or threads.machine_cpus()
    if processes == "auto":
        wanted = cores // math.ceil(cpus) if cpus > 0 else cores
    else:
        wanted = int(processes)
    return max(1, min(wanted, n_tasks))


class LocalExecutor(Executor):
    """Run stages shard by shard in this process, or on ``processes`` worker processes kept for the
    executor's life (call ``close()``, or use it as a context manager; ``build`` does).

    Args:
        processes: worker processes; 1 runs in-process (what tests and the demo use); ``auto`` = as
            many as the stage's ``resources.cpus`` allows on this machine (see ``local_workers``).
        show_progress: draw a progress bar per stage.
        gpus: this machine's GPUs as ``CUDA_VISIBLE_DEVICES`` entries (default: ``visible_gpus()``,
            asked once, when a stage could use one; tests give a fake list).
    """

    name = "local"

    def __init__(self, processes: int | Literal["auto"] = 1, show_progress: bool = True,
                 gpus: list[str] | None = None) -> None:
        super().__init__(show_progress)
        self.processes = processes if processes == "auto" else max(1, int(processes))
        self.pool: WorkerPool | None = None
        self.gpus = gpus

    def _pool_for(self, workers: int, slots: tuple[str | None, ...] | None = None) -> WorkerPool:
        """The live pool if ``workers`` workers of the same share (and GPU slots) fit on it, else a new one."""
        share = max(1, threads.machine_cpus() // workers)
        if self.pool is None or not self.pool.fits(workers, share, slots):
            self.close()
            self.pool = WorkerPool(workers, share, slots)
        return self.pool

    def gpu_slots(self, stage: Stage) -> list[str | None]:
        """The GPU slot of each worker ``stage`` may have here (``gpus.gpu_slots``); empty on the CPU."""
        if not may_use_gpu(stage):
            return []
        if self.gpus is None:
            self.gpus = visible_gpus()
        return gpu_slots(stage_gpus(stage, len(self.gpus)), self.gpus, stage.device())

    def run_tasks(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        slots = self.gpu_slots(stage)
        if slots:  # a GPU stage: its slots decide, round-robin over the GPUs
            workers = min(len(slots), len(tasks))
        else:
            workers = local_workers(self.processes, stage.resources().cpus, len(tasks))
        if workers == 1:  # in-process: the stage may use this whole process's share (and its GPUs)
            for task in tasks:
                yield run_shard(stage, out, task)
            return
        yield from self._pool_for(workers, tuple(slots[:workers]) if slots else None).run(stage, out, tasks)

    def iter_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        """``fn(*job)`` per job on the build's worker pool (in-process with 1 worker), yielded in job
        order with at most 2 × workers calls in flight.

        Args:
            fn: a module-level function.
            jobs: one argument tuple per call.
        """
        workers = local_workers(self.processes, 0, len(jobs))
        if workers == 1:
            yield from super().iter_calls(fn, jobs)
            return
        yield from self._pool_for(workers).call(fn, jobs, window=2 * workers)

    def close(self) -> None:
        """Stop the worker pool (each worker tears down its stages); safe to call twice."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()
