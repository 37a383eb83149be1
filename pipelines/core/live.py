"""What watches a build while it runs, attached to its executor for the build's duration: the progress
tally (the ``build`` line with the whole build's ETA) and the metrics endpoint (``metrics.port``).
Both hear of the shard stages through the executor (``planned``, ``shard_done``) and of the global
steps through ``notify`` (``step_started``, ``step_done``), which the build calls around each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from regionset.pipelines.core.eta import StepCost
from regionset.pipelines.core.metrics import BuildMetrics, MetricsConfig, MetricsServer
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import BuildTally, console
from regionset.pipelines.core.shards import shard_path


def shard_sizes(out: Output, outputs: dict[str, str]) -> Callable[[Any], int]:
    """``marker -> bytes`` of the shard file it committed (local outputs; 0 on object stores, where
    a size is one more request per shard)."""
    def size(marker: Any) -> int:
        if out.is_remote or marker.stage not in outputs:
            return 0
        try:
            return shard_path(out, outputs[marker.stage], marker.shard).stat().st_size
        except OSError:
            return 0
    return size


def notify(executor: Any, event: str, *args: Any) -> None:
    """Call ``event(*args)`` on each of ``executor``'s watchers that has it (``step_started``, ...)."""
    for w in list(getattr(executor, "watchers", None) or ()):
        fn = getattr(w, event, None)
        if callable(fn):
            fn(*args)


@contextmanager
def live_watchers(executor: Any, out: Output, outputs: dict[str, str], shards: int, metrics: MetricsConfig,
                  progress: bool, steps: dict[str, StepCost | None] | None = None) -> Iterator[BuildMetrics | None]:
    """Attach the build's watchers to ``executor`` (first, so a caller's own watchers see their
    state after each marker) and the metrics endpoint; detach and close them when the build ends.

    Args:
        executor: the build's executor.
        out: the build's output.
        outputs: the shard stages to run, in order: name -> table folder.
        shards: the build's shard count.
        metrics: the ``metrics`` section.
        progress: draw the ``build`` progress line.
        steps: the global steps to run: name -> cost model (``GlobalStep.cost``).
    """
    added: list[Any] = [BuildTally(list(outputs), shards, steps=steps, announce=True)] if progress else []
    server = None
    collected = None
    if metrics.port:
        collected = BuildMetrics(sizes=shard_sizes(out, outputs), stages=list(outputs), shards=shards)
        server = MetricsServer(collected, metrics.port, metrics.host)
        added.append(collected)
        console.print(f"metrics: http://{metrics.host}:{server.port}/metrics")
    watchers = getattr(executor, "watchers", None)  # an executor not built on Executor has none
    if watchers is not None:
        watchers[:0] = added
    try:
        yield collected
    finally:
        for w in added if watchers is not None else ():
            watchers.remove(w)
        if server is not None:
            server.close()
