"""The thread budget per worker: what each worker's pools actually ended up with, on every engine.

A probe stage loads the real libraries a stage uses (torch, OpenCV, RapidOCR's onnxruntime sessions)
and reports, per shard, the thread counts its worker process ended up with. Each engine runs it with
1 and 2 workers: local processes, a local Ray, Spark ``local[2]``.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.common import threads
from regionset.pipelines.core.shards import shard_path, write_table
from regionset.pipelines.executors.config import RayConfig, SparkConfig
from regionset.pipelines.executors.local import LocalExecutor, local_workers
from regionset.pipelines.executors.ray_data import pool_shape
from regionset.schemas import INPUT, input_schema
from regionset.stages.base import Resources, Stage

ROOT = Path(__file__).resolve().parents[3]
COUNTS = ("budget", "torch", "torch_interop", "cv2", "onnx", "omp_env")
PROBE_SCHEMA = pa.schema([pa.field("shard", pa.int64()), pa.field("pid", pa.int64())]
                         + [pa.field(k, pa.int64()) for k in COUNTS])


@dataclass(frozen=True)
class FakeProbeConfig:
    resources: Resources = Resources()


class FakeThreadProbeStage(Stage):
    """Loads torch, cv2 and RapidOCR in setup; each shard answers the thread counts of its worker."""

    name = "thread_probe"
    inputs = (INPUT,)
    output = "thread_probe"

    def setup(self) -> None:
        import cv2  # noqa: F401
        import torch  # noqa: F401

        from regionset.models.ocr import RapidOcr

        self.ocr = RapidOcr()

    def output_schema(self) -> pa.Schema:
        return PROBE_SCHEMA

    def process(self, table: pa.Table) -> pa.Table:
        counts = threads.snapshot()
        onnx = set(self.ocr.session_threads().values())
        assert len(onnx) == 1, onnx  # det, cls and rec sessions agree
        counts["onnx"] = onnx.pop()
        shard = int(table.column("key")[0].as_py()) if table.num_rows else -1
        return pa.Table.from_pylist([{"shard": shard, "pid": os.getpid(), **{k: counts[k] for k in COUNTS}}],
                                    schema=PROBE_SCHEMA)


def _probe(executor, out: Path, cpus: float = 0.0, shards: tuple[int, ...] = (0, 1)) -> list[dict]:
    for s in shards:
        rows = [{"key": str(s), "url": "http://127.0.0.1/x.jpg", "caption": None}]
        write_table(pa.Table.from_pylist(rows, schema=input_schema()), shard_path(out, INPUT, s))
    stage = FakeThreadProbeStage(FakeProbeConfig(Resources(cpus=cpus)))
    executor.run_stage(stage, out, list(shards))
    return [pq.read_table(shard_path(out, "thread_probe", s)).to_pylist()[0] for s in shards]


def _assert_budget(rows: list[dict], want: int, counts: tuple[str, ...] = COUNTS) -> None:
    for row in rows:
        assert {k: row[k] for k in counts} == dict.fromkeys(counts, want), row


@pytest.fixture
def restore_process(monkeypatch):
    """In-process runs size this process's pools: put the budget and the variables back afterwards."""
    import torch

    for name in (*threads.ENV_NAMES, threads.SHARE_ENV):
        monkeypatch.setenv(name, os.environ[name]) if name in os.environ else monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setattr(threads, "_applied", threads._applied)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_stage_budget_is_cpus_capped_by_the_share(monkeypatch):
    monkeypatch.setattr(threads, "_share", None)
    monkeypatch.setenv(threads.SHARE_ENV, "4")
    assert threads.worker_share() == 4
    assert [threads.stage_threads(c) for c in (0, 0.5, 1, 2.5, 8)] == [4, 1, 1, 3, 4]
    monkeypatch.setattr(threads, "_share", None)
    assert threads.set_worker_share(0.75) == 1 and threads.stage_threads(0) == 1  # a fractional Ray actor


def test_auto_processes_follow_the_stage_cpus():
    assert local_workers("auto", 0, 100, cores=8) == 8  # one per core
    assert local_workers("auto", 2, 100, cores=8) == 4
    assert local_workers("auto", 3, 100, cores=8) == 2
    assert local_workers("auto", 16, 100, cores=8) == 1
    assert local_workers("auto", 1, 3, cores=8) == 3  # never more than shards
    assert local_workers(2, 4, 100, cores=8) == 2  # a number is taken as given


def test_ray_actor_of_a_whole_share_stage_asks_one_cpu():
    assert pool_shape(Resources(), {"CPU": 8.0}, 100, RayConfig()) == (8, 0.938, 0.0)  # 7.5 usable CPUs / 8
    assert pool_shape(Resources(cpus=2), {"CPU": 2.0}, 100, RayConfig())[:2] == (1, 1.5)


@pytest.mark.parametrize("processes", [1, 2])
def test_local_workers_get_an_equal_share(processes, tmp_path, restore_process):
    with LocalExecutor(processes, show_progress=False) as ex:
        rows = _probe(ex, tmp_path)
    # In-process, torch's inter-op pool keeps the size this test process first gave it (once per process).
    counts = COUNTS if processes > 1 else tuple(k for k in COUNTS if k != "torch_interop")
    _assert_budget(rows, max(1, threads.machine_cpus() // processes), counts)
    assert len({r["pid"] for r in rows}) == 1 or processes == 2


def _skip_without(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.mark.ray
def test_ray_actors_get_their_num_cpus(tmp_path, restore_process):
    _skip_without("ray")
    from regionset.pipelines.executors.ray_data import RayExecutor

    # 8 logical CPUs: an actor holding most of a small Ray's CPUs never starts (Ray Data keeps a share
    # of the CPUs for its other operators), so the pool stays small against the logical total.
    cfg = RayConfig(num_cpus=8)
    with RayExecutor(cfg, show_progress=False) as ex:
        for cpus, shards in ((2.0, (0,)), (0.0, (0, 1))):  # 1 actor of 2 CPUs; 2 actors of 1 CPU
            size, actor_cpus, _ = pool_shape(Resources(cpus=cpus), {"CPU": 8.0}, len(shards), cfg)
            assert size == len(shards)
            rows = _probe(ex, tmp_path / f"cpus{cpus:g}", cpus, shards)
            _assert_budget(rows, math.ceil(actor_cpus))


@pytest.mark.spark
@pytest.mark.parametrize("task_cpus", [2, 1])  # local[2]: 1 task slot of 2 CPUs, or 2 slots of 1
def test_spark_tasks_get_spark_task_cpus(task_cpus, tmp_path, restore_process):
    _skip_without("pyspark")
    from regionset.pipelines.executors.spark import SparkExecutor

    cfg = SparkConfig(master="local[2]", conf={"spark.task.cpus": str(task_cpus)})
    with SparkExecutor(cfg, show_progress=False) as ex:
        _assert_budget(_probe(ex, tmp_path), task_cpus)
