"""Shard tasks as rows, the worker-side runner and Ray pool sizing (no Ray or Spark started here)."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass

import pyarrow as pa
import pytest

from regionset.pipelines.core.shard_run import StageReport, check_complete, plan_stage, run_shard
from regionset.pipelines.core.shards import read_marker, read_table, shard_path, write_table
from regionset.pipelines.executors.config import RayConfig
from regionset.pipelines.executors.distributed import (
    RESULT_SCHEMA,
    cached_stage,
    markers_of,
    run_task_batch,
    task_table,
)
from regionset.schemas import INPUT, input_schema
from regionset.stages.base import Resources, Stage

SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("n", pa.int64())])


@dataclass(frozen=True)
class FakeConfig:
    factor: int = 2


class FakeDoubleStage(Stage):
    """Doubles the URL's length, drops odd keys (counted), and counts its setups."""

    name = "fake_double"
    inputs = (INPUT,)
    output = "fake_out"
    setups = 0

    def setup(self) -> None:
        type(self).setups += 1

    def output_schema(self) -> pa.Schema:
        return SCHEMA

    def process(self, table: pa.Table) -> pa.Table:
        rows = [r for r in table.to_pylist() if int(r["key"]) % 2 == 0]
        self.counters["dropped:odd"] += table.num_rows - len(rows)
        return pa.Table.from_pylist([{"key": r["key"], "n": len(r["url"]) * self.config.factor} for r in rows],
                                    schema=SCHEMA)


def _inputs(out, shards):
    for s in shards:
        rows = [{"key": str(i), "url": "u" * i, "caption": None} for i in range(s, s + 5)]
        write_table(pa.Table.from_pylist(rows, schema=input_schema()), shard_path(out, INPUT, s))


def test_worker_runner_writes_what_local_writes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        _inputs(out, [0, 1, 2])
    stage = FakeDoubleStage(FakeConfig())
    local = [run_shard(stage, a, t) for t in plan_stage(stage, a, [0, 1, 2])]
    shipped = pickle.loads(pickle.dumps(stage))  # what a worker receives: the config only
    result = run_task_batch(cached_stage(shipped), b, task_table(plan_stage(stage, b, [0, 1, 2])))
    assert result.schema == RESULT_SCHEMA
    remote = markers_of(result)
    timing = ("seconds", "finished_at")
    assert [{k: v for k, v in asdict(m).items() if k not in timing} for m in remote] == \
        [{k: v for k, v in asdict(m).items() if k not in timing} for m in local]
    assert remote[0].counters == {"dropped:odd": 2}
    for s in (0, 1, 2):
        assert read_table(shard_path(b, "fake_out", s)).equals(read_table(shard_path(a, "fake_out", s)))
        assert json.loads(json.dumps(asdict(read_marker(b, "fake_double", s))))["output_sha256"] == \
            local[s].output_sha256


def test_cached_stage_sets_up_once_per_config():
    FakeDoubleStage.setups = 0
    first = cached_stage(pickle.loads(pickle.dumps(FakeDoubleStage(FakeConfig(3)))))
    again = cached_stage(pickle.loads(pickle.dumps(FakeDoubleStage(FakeConfig(3)))))
    other = cached_stage(FakeDoubleStage(FakeConfig(4)))
    assert first is again and other is not first
    assert FakeDoubleStage.setups == 2


def test_lost_shard_is_an_error(tmp_path):
    _inputs(tmp_path, [0, 1])
    stage = FakeDoubleStage(FakeConfig())
    tasks = plan_stage(stage, tmp_path, [0, 1])
    markers = markers_of(run_task_batch(stage, tmp_path, task_table(tasks[:1])))
    with pytest.raises(RuntimeError, match=r"expected markers for shards \[0, 1\]"):
        check_complete(StageReport(stage.name), tasks, markers)


def test_ray_pool_never_holds_every_cpu():
    from regionset.pipelines.executors.ray_data import pool_shape

    size, cpus, gpus = pool_shape(Resources(cpus=1.0), {"CPU": 2.0}, 8, RayConfig())
    assert (size, gpus) == (2, 0.0) and size * cpus < 2.0  # 2 actors × 0.75 CPU: reads still schedule
    assert pool_shape(Resources(cpus=1.0), {"CPU": 16.0}, 3, RayConfig())[0] == 3  # never more than shards
    assert pool_shape(Resources(cpus=1.0, gpus=1.0), {"CPU": 16.0, "GPU": 4.0}, 9, RayConfig())[:1] == (4,)
    assert pool_shape(Resources(), {"CPU": 4.0}, 9, RayConfig(actors=1))[0] == 1


def test_ray_gpu_stage_on_a_cpu_cluster_names_the_option():
    from regionset.pipelines.executors.ray_data import pool_shape

    with pytest.raises(RuntimeError, match="executor.ray.gpus_per_actor"):
        pool_shape(Resources(gpus=1.0), {"CPU": 8.0}, 2, RayConfig())
    assert pool_shape(Resources(gpus=1.0), {"CPU": 8.0}, 2, RayConfig(gpus_per_actor=0))[2] == 0


def test_task_rows_carry_the_stale_marker_flag():
    """A worker removes a shard's old marker before rewriting it only if the task row says so."""
    from regionset.pipelines.core.shard_run import ShardTask

    rows = task_table([ShardTask(3, "c", "i", stale_marker=True), ShardTask(4, "c", "i")]).to_pylist()
    assert [r["stale_marker"] for r in rows] == [True, False]


def test_device_auto_reserves_a_gpu_on_a_gpu_cluster_only():
    """Issue 32: a worker uses a GPU only when Ray gave it one, so ``device: auto`` reserves one."""
    from regionset.pipelines.executors.ray_data import reserved
    from regionset.stages.detect import DetectConfig, DetectStage, UltralyticsConfig
    from regionset.stages.embed import EmbedStage
    from regionset.stages.pack import PackStage

    auto = DetectStage(DetectConfig(backend="ultralytics"))
    assert reserved(auto, {"CPU": 8.0, "GPU": 2.0}).gpus == 1.0 and reserved(EmbedStage(), {"GPU": 1.0}).gpus == 1.0
    assert reserved(auto, {"CPU": 8.0}).gpus == 0.0
    cpu = DetectStage(DetectConfig(backend="ultralytics", ultralytics=UltralyticsConfig(device="cpu")))
    assert reserved(cpu, {"CPU": 8.0, "GPU": 2.0}).gpus == 0.0
    assert reserved(DetectStage(), {"CPU": 8.0, "GPU": 2.0}).gpus == 0.0  # the weight-free proposer
    assert reserved(PackStage(), {"CPU": 8.0, "GPU": 2.0}).gpus == 0.0  # no device: never a GPU
