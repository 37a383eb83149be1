"""The local executor's GPU workers, on the CPU: a fake two-GPU machine (``FAKE_GPUS``) and a fake
GPU stage that reports, per shard, the ``CUDA_VISIBLE_DEVICES`` its worker was pinned to. Nothing
starts CUDA; the pin is what a real worker's ``cuda`` would resolve to.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.core.shards import shard_path, write_table
from regionset.pipelines.executors.local import LocalExecutor
from regionset.schemas import INPUT, input_schema
from regionset.stages.base import Resources, Stage

ROOT = Path(__file__).resolve().parents[3]
FAKE_GPUS = ["0", "1"]  # a fake two-GPU machine
OUT_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("pinned", pa.string()), pa.field("pid", pa.int64())])


@dataclass(frozen=True)
class FakeGpuConfig:
    device: str = "cuda"
    resources: Resources = Resources()


class FakeGpuStage(Stage):
    """input -> fake_gpu: one row per input row with its worker's GPU pin and process id."""

    name = "fake_gpu"
    inputs = (INPUT,)
    output = "fake_gpu"

    def output_schema(self) -> pa.Schema:
        return OUT_SCHEMA

    def process(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        pinned = os.environ.get("CUDA_VISIBLE_DEVICES", "unpinned")
        return pa.table({"key": table.column("key"), "pinned": [pinned] * n, "pid": [os.getpid()] * n},
                        schema=OUT_SCHEMA)


@pytest.fixture
def spawn_path(monkeypatch):
    """Spawned workers import this checkout (and this test module, for the fake stage)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _run(out: Path, shards: int, config: FakeGpuConfig) -> dict[int, set[str]]:
    """Run the fake stage over ``shards`` shards on the fake GPUs; worker pid -> the pins it reported."""
    for s in range(shards):
        rows = [{"key": f"{s}-{i}", "url": f"http://127.0.0.1/{s}/{i}.jpg", "caption": None} for i in range(2)]
        write_table(pa.Table.from_pylist(rows, schema=input_schema()), shard_path(out, INPUT, s))
    with LocalExecutor(1, show_progress=False, gpus=FAKE_GPUS) as ex:
        assert ex.run_stage(FakeGpuStage(config), out, list(range(shards))).done == shards
    pins: dict[int, set[str]] = defaultdict(set)
    for s in range(shards):
        for row in pq.read_table(shard_path(out, "fake_gpu", s)).to_pylist():
            pins[row["pid"]].add(row["pinned"])
    return pins


def test_two_workers_share_each_of_two_gpus(tmp_path, spawn_path):
    """``resources.gpus=0.5`` on two GPUs: up to four workers, each pinned to one GPU, two per GPU at most."""
    pins = _run(tmp_path, 4, FakeGpuConfig(resources=Resources(gpus=0.5)))
    assert os.getpid() not in pins and all(len(p) == 1 for p in pins.values())  # a worker keeps its GPU
    per_gpu = defaultdict(int)
    for (pin,) in pins.values():
        per_gpu[pin] += 1
    assert set(per_gpu) <= set(FAKE_GPUS) and max(per_gpu.values()) <= 2


def test_a_device_with_an_index_leaves_every_gpu_visible(tmp_path, spawn_path):
    pins = _run(tmp_path, 2, FakeGpuConfig(device="cuda:1", resources=Resources(gpus=0.5)))
    assert os.getpid() not in pins and set().union(*pins.values()) == {"unpinned"}


def test_one_shard_runs_in_this_process(tmp_path, spawn_path):
    pins = _run(tmp_path, 1, FakeGpuConfig(resources=Resources(gpus=0.25)))
    assert set(pins) == {os.getpid()} and pins[os.getpid()] == {"unpinned"}
