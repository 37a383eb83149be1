"""``make_executor``: the backend an ``executor`` config section names (never sees the build config)."""

from __future__ import annotations

from regionset.pipelines.executors.base import Executor
from regionset.pipelines.executors.config import ExecutorConfig


def make_executor(config: ExecutorConfig, show_progress: bool = True) -> Executor:
    """The executor named by ``config.name`` (its backend imported only when named: ray, pyspark).

    Args:
        config: the ``executor`` section.
        show_progress: draw a progress bar per stage (the build's ``progress``).
    """
    name = config.name
    if name == "local":
        from regionset.pipelines.executors.local import LocalExecutor

        return LocalExecutor(config.processes, show_progress=show_progress)
    if name == "ray":
        from regionset.pipelines.executors.ray_data import RayExecutor

        return RayExecutor(config.ray, show_progress=show_progress, stall_timeout=config.stall_timeout)
    if name == "spark":
        from regionset.pipelines.executors.spark import SparkExecutor

        return SparkExecutor(config.spark, show_progress=show_progress, stall_timeout=config.stall_timeout)
    raise ValueError(f"executor.name: unknown executor {name!r}")
