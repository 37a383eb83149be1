"""What the Ray and Spark executors share: shard tasks as Arrow rows, the worker-side shard runner.

Distributed executors ship *shard tasks* (shard id + the hashes its marker will carry), not data:
a worker reads the shard's inputs from the output folder (a shared filesystem on a cluster), runs
the stage exactly as ``local`` does (``run_shard``: prepare -> process -> validate -> atomic write
-> marker last) and answers one small result row per shard carrying the marker. The shard stays
the unit of work, so shards with no rows still get their (empty) output file and marker, stages
with several inputs still see them joined by ``prepare``, and outputs are identical to ``local``.
``Executor.run_calls`` (independent calls such as the per-parent k-means fits) runs each call
through ``call_in_worker``, which first sizes the worker's thread pools to its share of cores.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from regionset.common import threads
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask, run_shard
from regionset.pipelines.core.shards import Marker
from regionset.stages.base import Stage

# The rows a distributed executor moves around: tasks in, markers out.
TASK_SCHEMA = pa.schema([
    pa.field("shard", pa.int64(), nullable=False),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("input_hash", pa.string(), nullable=False),
    pa.field("stale_marker", pa.bool_(), nullable=False),
])
RESULT_SCHEMA = pa.schema([
    pa.field("shard", pa.int64(), nullable=False),
    pa.field("marker", pa.string(), nullable=False),  # the completion marker, as JSON
])

# Environment a worker must share with the driver (offline switches, caches, thread limits).
# AWS_/GOOGLE_/AZURE_: object-store endpoint and credentials (README "Object storage"); never logged.
WORKER_ENV_PREFIXES = ("YOLO_", "HF_", "TRANSFORMERS_", "REGIONSET_", "OMP_", "MKL_", "AWS_", "GOOGLE_", "AZURE_")
WORKER_ENV_NAMES = ("MPLCONFIGDIR", "NO_ALBUMENTATIONS_UPDATE", "WANDB_MODE", "TORCH_HOME", "XDG_CACHE_HOME",
                    "BOTO_CONFIG")

_WORKER_STAGES: dict[str, Stage] = {}


def worker_env() -> dict[str, str]:
    """The driver's environment variables that workers need to behave the same (e.g. offline)."""
    return {k: v for k, v in os.environ.items() if k.startswith(WORKER_ENV_PREFIXES) or k in WORKER_ENV_NAMES}


def task_table(tasks: list[ShardTask]) -> pa.Table:
    """Shard tasks as an Arrow table with ``TASK_SCHEMA``, one row per shard."""
    return pa.Table.from_pylist([asdict(t) for t in tasks], schema=TASK_SCHEMA)


def cached_stage(stage: Stage) -> Stage:
    """This worker process's set-up copy of ``stage`` (models load once per process, not per shard).

    Args:
        stage: a stage as unpickled in the worker (config only, no models).
    """
    key = type(stage).__qualname__ + ":" + hashlib.sha256(pickle.dumps(stage.config)).hexdigest()
    cached = _WORKER_STAGES.get(key)
    if cached is None:
        stage.ensure_setup()
        atexit.register(stage.ensure_teardown)  # the worker process is the stage's lifetime
        cached = _WORKER_STAGES[key] = stage
    return cached


def run_task_batch(stage: Stage, out: Output, batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """Run every shard task of ``batch`` (rows of ``TASK_SCHEMA``) and return their ``RESULT_SCHEMA`` rows.

    Args:
        stage: a set-up stage (see ``cached_stage``).
        out: the output folder, as seen by this worker.
        batch: shard tasks.
    """
    rows = []
    for row in batch.to_pylist():
        task = ShardTask(int(row["shard"]), row["config_hash"], row["input_hash"], bool(row["stale_marker"]))
        marker = run_shard(stage, out, task)
        rows.append({"shard": marker.shard, "marker": json.dumps(asdict(marker), sort_keys=True)})
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def markers_of(results: pa.Table | pa.RecordBatch) -> list[Marker]:
    """Markers carried back in ``RESULT_SCHEMA`` rows."""
    return [Marker(**json.loads(m)) for m in results.column("marker").to_pylist()]




def call_in_worker(share: float, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a Ray/Spark worker, with its thread pools sized to ``share`` cores first.

    Args:
        share: the cores the executor gave this call (Ray ``num_cpus``, Spark ``spark.task.cpus``).
        fn: a module-level function.
        args: its arguments.
    """
    threads.apply(threads.set_worker_share(share))
    return fn(*args)
