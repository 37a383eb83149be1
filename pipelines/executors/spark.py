"""The ``spark`` executor: PySpark ``mapInArrow`` over shard tasks, one partition per shard.

Each stage becomes one Spark job: a DataFrame of shard tasks, sliced one shard per partition ->
``mapInArrow(run, schema)``. In the Python worker the stage is set up once per process (Spark
reuses Python workers) and each shard runs exactly as ``local`` runs it: inputs read from the shared
output folder, output validated against the stage's schema from ``schemas/``, written atomically,
marker last. The Spark-level rows are the markers (``RESULT_SCHEMA``): the stage tables themselves
never pass through the JVM, which cannot hold every column type regionset uses (Spark has no
float16, so ``embeddings`` would not survive the trip) and would only copy image bytes twice.

Workers run ``executor.spark.python`` (default: this interpreter), set as ``PYSPARK_PYTHON``
before the session starts; otherwise Spark starts the system python, which lacks regionset.
``run_calls`` (e.g. the per-parent k-means fits) runs one call per partition of a plain RDD.

``executor.stall_timeout``: every job runs under ``spark_watch.watched``, which stops the build when no
task finishes for that long (docs/cluster.md "Faults").
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from regionset.common import threads
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask
from regionset.pipelines.core.shards import Marker
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.executors.config import SparkConfig
from regionset.pipelines.executors.distributed import (
    RESULT_SCHEMA,
    TASK_SCHEMA,
    cached_stage,
    call_in_worker,
    markers_of,
    run_task_batch,
    task_table,
    worker_env,
)
from regionset.pipelines.executors.gpus import pin_task_gpus, spark_task_gpu_amount, worker_gpus
from regionset.pipelines.executors.spark_watch import SparkHosts, watched
from regionset.pipelines.executors.stall import StallError
from regionset.stages.base import Stage

_PIP_HINT = "the spark executor needs PySpark and Java 17+: pip install 'regionset[spark]' (pyspark)"


def _pyspark():
    try:
        import pyspark.sql  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(_PIP_HINT) from e
    import pyspark

    return pyspark


def spark_schema(arrow_schema):
    """The Spark ``StructType`` of an Arrow schema (one place for column names and types).

    Args:
        arrow_schema: a ``pyarrow.Schema`` made of Spark-representable types.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def _shard_runner(stage: Stage, out: Output):
    """The ``mapInArrow`` function: run every shard task of the partition, yield marker rows. The
    task's ``spark.task.cpus`` is the worker's share of cores, which sizes the stage's thread pools."""

    def run(batches):
        from pyspark import TaskContext

        ctx = TaskContext.get()
        threads.set_worker_share(ctx.cpus() if ctx is not None else 1)
        gpu = ctx.resources().get("gpu") if ctx is not None else None
        pin_task_gpus(gpu.addresses if gpu is not None else [])  # before setup() starts CUDA
        ready = cached_stage(stage)
        for batch in batches:
            if batch.num_rows:
                yield from run_task_batch(ready, out, batch).to_batches()

    return run


def _call_runner(fn: Callable[..., Any]):
    """The RDD ``map`` function: one ``(index, job)`` call with the task's ``spark.task.cpus`` as its share."""

    def run(item: tuple[int, tuple]) -> tuple[int, Any]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        return item[0], call_in_worker(ctx.cpus() if ctx is not None else 1, fn, *item[1])

    return run


def worker_python(config: SparkConfig) -> str:
    """The Python interpreter Spark workers start: ``executor.spark.python``; when empty, this
    interpreter on a ``local[...]`` master (same host) and Spark's own choice on a cluster
    (``PYSPARK_PYTHON`` / ``spark.pyspark.python`` of its configuration, else ``python3``): the driver's
    ``sys.executable`` usually does not exist on other hosts. The worker probe checks it inside a task."""
    if config.python:
        return config.python
    return sys.executable if config.master.startswith("local") else ""


def _first_line(err: Exception) -> str:
    """The worker's own error out of a py4j/Spark error (its last ``Error:`` line), else its first line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln or "Exception:" in ln]
    return (errors[-1] if errors else lines[0] if lines else type(err).__name__)[:300]


class SparkExecutor(Executor):
    """Run stages as Spark jobs, on ``local[*]`` or on the cluster at ``config.master``.

    Args:
        config: the ``executor.spark`` settings.
        show_progress: draw a progress bar per stage (advanced when the stage's job returns).
        stall_timeout: ``executor.stall_timeout`` (0: wait as long as Spark does).
    """

    name = "spark"

    def __init__(self, config: SparkConfig | None = None, show_progress: bool = True,
                 stall_timeout: float = 0.0) -> None:
        super().__init__(show_progress, stall_timeout)
        self.config = config or SparkConfig()
        self._session = None
        self._hosts: SparkHosts | None = None

    def session(self):
        """The SparkSession, started on first use from ``executor.spark``."""
        if self._session is None:
            _pyspark()
            from pyspark.sql import SparkSession

            python = worker_python(self.config)
            if python:
                os.environ["PYSPARK_PYTHON"] = python  # read when the session's JVM starts
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
            builder = (
                SparkSession.Builder().master(self.config.master).appName("regionset")  # a fresh builder: options never leak to later sessions
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.python.worker.reuse", "true")  # models load once per Python worker
                .config("spark.task.maxFailures", "2")
            )
            if python:
                builder = builder.config("spark.pyspark.python", python)
            for key, value in worker_env().items():
                builder = builder.config(f"spark.executorEnv.{key}", value)
            for key, value in self.config.conf.items():
                builder = builder.config(key, value)
            self._session = builder.getOrCreate()
            self._session.sparkContext.setLogLevel("ERROR")
            self._hosts = SparkHosts(self._session.sparkContext)
        return self._session

    def guard(self, results: Iterator[Any], what: str = "shard") -> Iterator[Any]:
        """``results`` as they come: the stall timeout watches Spark's tasks inside ``_watched``
        (the markers of a stage all arrive at once when its job ends)."""
        yield from results

    def lost_nodes(self) -> str:
        """Executor hosts seen in this session that have no executor now."""
        return self._hosts.lost() if self._hosts is not None else ""

    def _watched(self, action: Callable[[], Any], what: str) -> Any:
        """``action()`` under ``executor.stall_timeout`` (``spark_watch.watched``)."""
        sc = self.session().sparkContext
        try:
            return watched(sc, action, self.stall_timeout, self.lost_nodes, what,
                           on_poll=self._hosts.now if self._hosts is not None else None)
        except StallError:
            self.stalled = True
            raise

    def run_tasks(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        spark = self.session()
        rows = [tuple(r.values()) for r in task_table(tasks).to_pylist()]
        # parallelize slices a list evenly: n rows in n slices is exactly one shard per partition.
        rdd = spark.sparkContext.parallelize(rows, numSlices=len(rows))
        df = spark.createDataFrame(rdd, schema=spark_schema(TASK_SCHEMA))
        result = df.mapInArrow(_shard_runner(stage, Output.of(out)), spark_schema(RESULT_SCHEMA),  # out: as its URL
                               profile=self.gpu_profile(stage))
        for batch in self._watched(result.toArrow, "shard").to_batches():
            yield from markers_of(batch)

    def gpu_profile(self, stage: Stage):
        """A task resource profile giving each task of ``stage`` its GPU share, or None
        (``gpus.spark_task_gpu_amount``: a cluster whose executors have GPUs, a stage that uses one)."""
        c = self.config
        amount = spark_task_gpu_amount(worker_gpus(stage), c.master, c.conf)
        if amount is None:
            return None
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        requests = TaskResourceRequests().cpus(int(c.conf.get("spark.task.cpus", 1))).resource("gpu", amount)
        return ResourceProfileBuilder().require(requests).build

    def iter_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        """``fn(*job)`` per job, one job per RDD partition, yielded in job order; the jobs go to Spark
        in batches of twice its default parallelism, so one batch's results are held at a time.

        Args:
            fn: a module-level function (workers import it by name).
            jobs: one argument tuple per call.
        """
        if not jobs:
            return
        sc = self.session().sparkContext
        batch = max(2, 2 * sc.defaultParallelism)
        for start in range(0, len(jobs), batch):
            part = list(enumerate(jobs[start:start + batch]))
            rdd = sc.parallelize(part, numSlices=len(part))
            got = self._watched(rdd.map(_call_runner(fn)).collect, "call")
            yield from (r for _, r in sorted(got, key=lambda ir: ir[0]))

    def on_every_node(self, fn: Callable[..., Any], args: tuple, timeout: float) -> tuple[str, list[Any]]:
        """Twice as many one-call tasks as the cluster's cores, spread by Spark over its executors (it
        cannot pin a task to a host: the probe keeps one answer per address), given the driver's host."""
        sc = self.session().sparkContext
        toward = sc.getConf().get("spark.driver.host") or "127.0.0.1"
        n = max(2, 2 * sc.defaultParallelism)
        sc.setJobGroup(f"regionset-probe-{os.getpid()}", "worker probe", interruptOnCancel=True)
        timer = threading.Timer(timeout, sc.cancelJobGroup, args=(f"regionset-probe-{os.getpid()}",))
        timer.start()
        try:
            got = sc.parallelize([(i, (toward, *args)) for i in range(n)], numSlices=n).map(_call_runner(fn)).collect()
        except Exception as e:  # noqa: BLE001 (py4j wraps every worker error, a cancelled job included)
            if not timer.is_alive():
                raise TimeoutError(f"no answer from every Spark task within {timeout:g} s") from None
            raise RuntimeError(_first_line(e)) from None
        finally:
            timer.cancel()
            sc.setLocalProperty("spark.jobGroup.id", None)
        return toward, [r for _, r in got]

    def close(self) -> None:
        """Stop the SparkSession if one was started."""
        if self._session is not None:
            self._session.stop()
            self._session = None
