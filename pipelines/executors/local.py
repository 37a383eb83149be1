"""The embedded default executor: in-process, shard by shard, with an optional process pool.

Each worker process gets an equal share of this machine's cores (``common/threads.py``): its
stage's thread pools are sized to that share (or to the stage's ``resources.cpus`` when smaller),
so N workers run about as many threads as there are cores. ``processes="auto"`` starts as many
workers as the stage's ``resources.cpus`` fits on this machine.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any, Literal

from common import threads
from common.storage import as_path
from pipelines.executors.base import Executor, ShardTask, run_shard
from pipelines.shards import Marker
from stages.base import Stage

_WORKER_STAGE: Stage | None = None


def _init_worker(stage: Stage, share: int) -> None:
    global _WORKER_STAGE
    threads.set_worker_share(share)  # before ensure_setup() sizes the stage's pools from it
    _WORKER_STAGE = stage  # unpickled from its config: models load in ensure_setup(), once per worker
    Finalize(stage, stage.ensure_teardown, exitpriority=10)  # runs when the pool shuts the worker down


def _work(out: str, task: ShardTask) -> Marker:
    assert _WORKER_STAGE is not None
    return run_shard(_WORKER_STAGE, as_path(out), task)


def local_workers(processes: int | Literal["auto"], cpus: float, n_tasks: int, cores: int | None = None) -> int:
    """Worker processes for a stage: ``processes``, or with ``auto`` as many as ``cpus`` threads each
    fit on ``cores`` (one per core when ``cpus`` is 0); never more than the shards to do.

    Args:
        processes: ``executor.processes``.
        cpus: the stage's ``resources.cpus``.
        n_tasks: shards to do.
        cores: this machine's cores (default: ``common.threads.machine_cpus()``).
    """
    cores = cores or threads.machine_cpus()
    if processes == "auto":
        wanted = cores // math.ceil(cpus) if cpus > 0 else cores
    else:
        wanted = int(processes)
    return max(1, min(wanted, n_tasks))


@contextmanager
def _spawn_env(share: int) -> Iterator[None]:
    """Thread-count variables that spawned workers read before anything imports numpy or torch."""
    names = (threads.SHARE_ENV, *threads.ENV_NAMES)
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: str(share) for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalExecutor(Executor):
    """Run stages shard by shard in this process, or in ``processes`` worker processes.

    Args:
        processes: worker processes; 1 runs in-process (what tests and the demo use); ``auto`` = as
            many as the stage's ``resources.cpus`` allows on this machine (see ``local_workers``).
        show_progress: draw a progress bar per stage.
    """

    name = "local"

    def __init__(self, processes: int | Literal["auto"] = 1, show_progress: bool = True) -> None:
        super().__init__(show_progress)
        self.processes = processes if processes == "auto" else max(1, int(processes))

    def run_tasks(self, stage: Stage, out: Path, tasks: list[ShardTask]) -> Iterator[Marker]:
        workers = local_workers(self.processes, stage.resources().cpus, len(tasks))
        if workers == 1:  # in-process: the stage may use this whole process's share
            for task in tasks:
                yield run_shard(stage, out, task)
            return
        share = max(1, threads.machine_cpus() // workers)
        ctx = mp.get_context("spawn")  # torch/onnx threads do not survive fork
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(stage, share)) as pool:
            with _spawn_env(share):  # workers start on the first submits
                futures = [pool.submit(_work, str(out), t) for t in tasks]
            for fut in as_completed(futures):
                yield fut.result()

    def run_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> list[Any]:
        """``fn(*job)`` per job on ``processes`` spawned workers (in-process with 1), in job order.

        Args:
            fn: a module-level function.
            jobs: one argument tuple per call.
        """
        workers = local_workers(self.processes, 0, len(jobs))
        if workers == 1:
            return super().run_calls(fn, jobs)
        share = max(1, threads.machine_cpus() // workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=threads.set_worker_share,
                                 initargs=(share,)) as pool, _spawn_env(share):
            return [f.result() for f in [pool.submit(fn, *job) for job in jobs]]
