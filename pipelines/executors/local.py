"""The embedded default executor: in-process, shard by shard, with an optional process pool."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from pipelines.executors.base import StageReport, plan_stage, run_shard
from pipelines.progress import StageProgress
from stages.base import Stage

_WORKER_STAGE: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _WORKER_STAGE
    _WORKER_STAGE = stage  # unpickled from its config: models load in ensure_setup(), once per worker


def _work(out: str, task):
    assert _WORKER_STAGE is not None
    return run_shard(_WORKER_STAGE, Path(out), task)


class LocalExecutor:
    """Run stages shard by shard in this process, or in ``processes`` worker processes.

    Args:
        processes: worker processes; 1 runs in-process (what tests and the demo use).
        show_progress: draw a progress bar per stage.
    """

    name = "local"

    def __init__(self, processes: int = 1, show_progress: bool = True) -> None:
        self.processes = max(1, processes)
        self.show_progress = show_progress

    def run_stage(self, stage: Stage, out: Path, shards: list[int]) -> StageReport:
        """Run ``stage`` on every shard of ``shards`` that is not already complete."""
        report = StageReport(stage.name)
        tasks = plan_stage(stage, out, shards, report)
        with StageProgress(stage.name, len(tasks), enabled=self.show_progress) as bar:
            if self.processes == 1 or len(tasks) <= 1:
                for task in tasks:
                    marker = run_shard(stage, out, task)
                    report.add(marker)
                    bar.advance(marker.rows_in)
            else:
                ctx = mp.get_context("spawn")  # torch/onnx threads do not survive fork
                with ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_init_worker,
                                         initargs=(stage,)) as pool:
                    futures = [pool.submit(_work, str(out), t) for t in tasks]
                    for fut in as_completed(futures):
                        marker = fut.result()
                        report.add(marker)
                        bar.advance(marker.rows_in)
        return report
