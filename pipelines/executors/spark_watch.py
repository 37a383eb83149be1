"""``executor.stall_timeout`` for the ``spark`` executor (docs/cluster.md "Faults").

A Spark stage returns all its shards at once, when its job ends, so the marker-by-marker guard of
``pipelines/executors/stall.py`` cannot watch it. ``watched(sc, action, ...)`` runs ``action`` (the
stage's job, or a batch of k-means calls) in a thread under its own job group and polls Spark's
status tracker: progress is a task of that group finishing (one shard, or one call). When none
finishes for ``seconds`` (e.g. every worker is gone and Spark keeps waiting for resources that will
never come), the group is cancelled and ``StallError`` names the executor hosts lost since the
session started. ``SparkHosts`` remembers every executor host seen, to tell which ones are gone.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from regionset.pipelines.executors.stall import StallError

T = TypeVar("T")
POLL_SECONDS = 1.0
_groups = itertools.count()


class SparkHosts:
    """The hosts that ran Spark executors for this session, and which of them are gone.

    Args:
        sc: the ``SparkContext``.
    """

    def __init__(self, sc) -> None:
        self.sc = sc
        self.seen: set[str] = set()

    def now(self) -> set[str]:
        """Hosts with a live executor now (the driver's own entry left out); remembered as seen."""
        driver = self.sc.getConf().get("spark.driver.host") or ""
        infos = self.sc._jsc.sc().statusTracker().getExecutorInfos()  # includes the driver
        hosts = {str(i.host()) for i in infos} - {driver}
        self.seen |= hosts
        return hosts

    def lost(self) -> str:
        """``host (Spark executor), ...; N executor host(s) left`` or empty when none was lost."""
        try:
            alive = self.now()
        except Exception as e:  # noqa: BLE001 - the message must not fail because the JVM is gone too
            return f"unknown (Spark does not answer: {type(e).__name__})"
        gone = sorted(self.seen - alive)
        if not gone:
            return ""
        return ", ".join(f"{h} (Spark executor)" for h in gone) + f"; {len(alive)} executor host(s) left"


def _finished_tasks(sc, group: str) -> int:
    """Tasks of ``group``'s jobs that finished successfully so far."""
    tracker = sc.statusTracker()
    done = 0
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage_id in info.stageIds if info else ():
            stage = tracker.getStageInfo(stage_id)
            done += stage.numCompletedTasks if stage else 0
    return done


def watched(sc, action: Callable[[], T], seconds: float, lost: Callable[[], str], what: str = "shard",
            on_poll: Callable[[], Any] | None = None) -> T:
    """``action()`` (Spark jobs started from it), raising ``StallError`` when no task of them finishes
    for ``seconds`` (0: no limit); the jobs are cancelled first.

    Args:
        sc: the ``SparkContext``.
        action: runs the job(s) and returns the result (runs in a helper thread).
        seconds: the stall timeout.
        lost: describes the lost executor hosts (called once, on a stall).
        what: what a task is, for the message (``shard``, ``call``).
        on_poll: called at every poll (e.g. ``SparkHosts.now``, to remember the hosts seen).
    """
    if seconds <= 0:
        return action()
    group = f"regionset-{os.getpid()}-{next(_groups)}"
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        sc.setJobGroup(group, f"regionset {what}s", interruptOnCancel=True)  # per thread: set it here
        try:
            box["result"] = action()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err
        finally:
            done.set()

    threading.Thread(target=run, name="spark-stall-watch", daemon=True).start()
    finished, since = -1, time.monotonic()
    while not done.wait(min(POLL_SECONDS, seconds)):
        if on_poll is not None:
            on_poll()
        now = _finished_tasks(sc, group)
        if now != finished:
            finished, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            message = (f"executor.stall_timeout: no {what} finished for {seconds:g} s (Spark kept waiting: "
                       f"tasks lost or no executor to run them); lost: {lost() or 'no executor host reported lost'}")
            sc.cancelJobGroup(group)
            raise StallError(message)
    if "error" in box:
        raise box["error"]
    return box["result"]
