"""The ``Executor`` contract: run a stage over shards on some backend.

``Executor.run_stage`` is the same flow on every backend (plan, progress bar, report, a check that
every planned shard came back); a backend implements only ``run_tasks`` and ``close``, and may
override ``run_calls`` (independent picklable calls, e.g. the per-parent k-means fits) to spread them.
Which shards to (re)do and doing one shard: ``pipelines/core/shard_run.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, ClassVar

from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import BuildTally, StageProgress
from regionset.pipelines.core.shard_run import (
    ShardTask,
    StageReport,
    check_complete,
    plan_stage,
    save_markers,
)
from regionset.pipelines.core.shards import Marker, remember_sha256, shard_path
from regionset.pipelines.executors.stall import StallError, guarded
from regionset.stages.base import Stage


def in_order(jobs: list[tuple], window: int, submit: Callable[[tuple], Any], wait: Callable[[Any], Any],
             cancel: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Results of ``jobs`` in job order, with at most ``window`` submitted and not yet yielded (a
    backend's ``iter_calls``): ``submit(job)`` returns a handle, ``wait(handle)`` its result;
    ``cancel(handle)`` runs on the handles still pending when the caller stops early or a call fails.

    Args:
        jobs: one argument tuple per call.
        window: calls in flight at most (at least 1).
        submit: starts one call.
        wait: blocks for one call's result.
        cancel: optional, drops a pending call.
    """
    todo, pending = iter(jobs), deque()
    try:
        pending.extend(submit(job) for job in islice(todo, max(1, window)))
        while pending:
            result = wait(pending.popleft())
            pending.extend(submit(job) for job in islice(todo, 1))
            yield result
    finally:
        if cancel is not None:
            for handle in pending:
                cancel(handle)


class Executor(ABC):
    """A backend that runs stages over shards. Use as a context manager, or call ``close()``.

    Args:
        show_progress: draw a progress bar per stage.
    """

    name: ClassVar[str] = ""

    def __init__(self, show_progress: bool = True, stall_timeout: float = 0.0) -> None:
        self.show_progress = show_progress
        # Told of each stage's plan and of every marker as it comes back, in the driver: the build's
        # progress tally and the metrics endpoint (``planned(stage, todo, skipped)``, ``shard_done(marker)``).
        self.watchers: list[Any] = []
        self.stall_timeout = stall_timeout  # executor.stall_timeout (0: wait as long as the engine does)
        self.stalled = False  # a stage stalled: the engine is stuck, close() must not wait on it

    def guard(self, results: Iterator[Any], what: str = "shard") -> Iterator[Any]:
        """``results`` under ``executor.stall_timeout`` (``pipelines/executors/stall.py``)."""
        try:
            yield from guarded(results, self.stall_timeout, self.lost_nodes, what)
        except StallError:
            self.stalled = True
            raise

    def lost_nodes(self) -> str:
        """The engine's worker nodes lost since this executor started, for a stall message."""
        return ""

    def run_stage(self, stage: Stage, out: Output, shards: list[int]) -> StageReport:
        """Run ``stage`` on every shard of ``shards`` that is not already complete.

        Args:
            stage: the stage to run.
            out: the output folder (on a cluster: a path every worker sees).
            shards: the shard ids of this build.
        """
        out = Output.of(out)  # callers may still pass a Path during the transition
        report = StageReport(stage.name)
        tasks = plan_stage(stage, out, shards, report)
        watchers = getattr(self, "watchers", [])
        for w in watchers:
            w.planned(stage.name, len(tasks), report.skipped)
        if not tasks:
            save_markers(stage, out, [])  # what planning read one by one
            return report
        markers: list[Marker] = []
        try:
            tally = next((w for w in watchers if isinstance(w, BuildTally)), None)
            with StageProgress(stage.name, len(tasks), enabled=self.show_progress, tally=tally) as bar:
                for marker in self.guard(self.run_tasks(stage, out, tasks)):
                    remember_sha256(shard_path(out, stage.output, marker.shard), marker.output_sha256)
                    markers.append(marker)
                    report.add(marker)
                    for w in watchers:
                        w.shard_done(marker)
                    bar.advance(marker.rows_in)
        except BaseException:
            for w in watchers:
                if hasattr(w, "stage_failed"):
                    w.stage_failed(stage.name)
            raise
        finally:
            stage.ensure_teardown()  # what this process set up (in-process runs); workers tear down their own
        check_complete(report, tasks, markers)
        save_markers(stage, out, markers)
        return report

    @abstractmethod
    def run_tasks(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        """Do every task (write its shard and marker) and yield the markers as they come back."""

    def run_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> list[Any]:
        """``fn(*job)`` for every job, results in job order, as a list (``iter_calls``).

        Args:
            fn: a module-level function (workers import it by name).
            jobs: one argument tuple per call; the calls are independent of each other.
        """
        return list(self.iter_calls(fn, jobs))

    def iter_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        """``fn(*job)`` for every job, yielded in job order. The default runs them in this process;
        a backend spreads them over its workers (``fn`` a module-level function, jobs picklable) and
        keeps only a window of about twice its parallelism in flight, so the caller holds a few
        results at a time, not all of them (the k-means refinement's per-parent sums).

        Args:
            fn: a module-level function (workers import it by name).
            jobs: one argument tuple per call; the calls are independent of each other.
        """
        for job in jobs:
            yield fn(*job)

    def on_every_node(self, fn: Callable[..., Any], args: tuple, timeout: float) -> tuple[str, list[Any]]:
        """``fn(toward, *args)`` once on every node that runs tasks (the worker probe,
        ``pipelines/preflight/probe.py``); returns ``(toward, results)``, ``toward`` the address of the
        cluster's head that the calls were given (each reports its own address toward it). The default
        is this process: one node.

        Args:
            fn: a module-level function (workers import it by name).
            args: its arguments after ``toward``.
            timeout: seconds to wait for all calls; a node that does not answer raises ``TimeoutError``.
        """
        return "127.0.0.1", [fn("127.0.0.1", *args)]

    def close(self) -> None:  # noqa: B027 - optional hook: a backend with nothing to release keeps it
        """Release the backend (worker pools, Ray, the Spark session); safe to call twice."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
