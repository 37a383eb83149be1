"""The embedded default executor: in-process, shard by shard, with an optional process pool."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing.util import Finalize
from pathlib import Path

from common.storage import as_path
from pipelines.executors.base import Executor, ShardTask, run_shard
from pipelines.shards import Marker
from stages.base import Stage

_WORKER_STAGE: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _WORKER_STAGE
    _WORKER_STAGE = stage  # unpickled from its config: models load in ensure_setup(), once per worker
    Finalize(stage, stage.ensure_teardown, exitpriority=10)  # runs when the pool shuts the worker down


def _work(out: str, task: ShardTask) -> Marker:
    assert _WORKER_STAGE is not None
    return run_shard(_WORKER_STAGE, as_path(out), task)


class LocalExecutor(Executor):
    """Run stages shard by shard in this process, or in ``processes`` worker processes.

    Args:
        processes: worker processes; 1 runs in-process (what tests and the demo use).
        show_progress: draw a progress bar per stage.
    """

    name = "local"

    def __init__(self, processes: int = 1, show_progress: bool = True) -> None:
        super().__init__(show_progress)
        self.processes = max(1, processes)

    def run_tasks(self, stage: Stage, out: Path, tasks: list[ShardTask]) -> Iterator[Marker]:
        if self.processes == 1 or len(tasks) <= 1:
            for task in tasks:
                yield run_shard(stage, out, task)
            return
        ctx = mp.get_context("spawn")  # torch/onnx threads do not survive fork
        with ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_init_worker,
                                 initargs=(stage,)) as pool:
            futures = [pool.submit(_work, str(out), t) for t in tasks]
            for fut in as_completed(futures):
                yield fut.result()
