"""``executor.stall_timeout`` on the ``spark`` executor (``pipelines/executors/spark_watch.py``): a
Spark job none of whose tasks finishes for that long is cancelled and stops the build with
``StallError``; a job whose tasks keep finishing runs to its end however long it takes in all."""

from __future__ import annotations

import importlib.util
import time

import pytest

from regionset.pipelines.executors.config import ExecutorConfig, SparkConfig
from regionset.pipelines.executors.stall import StallError

pytestmark = [pytest.mark.spark,
              pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed")]


@pytest.fixture(scope="module")
def spark_executor():
    from regionset.pipelines.executors.factory import make_executor

    ex = make_executor(ExecutorConfig(name="spark", spark=SparkConfig(master="local[1]"), stall_timeout=4),
                       show_progress=False)
    ex.session()
    yield ex
    ex.close()


def test_tasks_that_keep_finishing_outlast_the_stall_timeout(spark_executor):
    from regionset.pipelines.executors.spark_watch import watched

    sc = spark_executor.session().sparkContext
    slow = sc.parallelize(range(4), 4).map(lambda i: time.sleep(5) or i)  # one slot: >= 20 s in all
    assert sorted(watched(sc, slow.collect, 15, lambda: "", "shard")) == [0, 1, 2, 3]


def test_a_call_that_never_finishes_stops_at_the_stall_timeout(spark_executor):
    with pytest.raises(StallError, match=r"no call finished for 4 s .*lost: no executor host reported lost"):
        spark_executor.run_calls(time.sleep, [(600,)])  # a task stuck for good (cancelled by the guard)
    assert spark_executor.stalled
