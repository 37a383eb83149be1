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

# Environment a worker must share with the driver: offline switches, thread limits, and the object
# store's endpoint and credentials (README "Object storage"; never logged). Only values that mean the
# same on every host travel: a path or a profile names a file of the driver's host (docs/cluster.md,
# "What travels"), so a worker keeps its own (its cache and config folders, its credentials file).
WORKER_ENV_PREFIXES = ("YOLO_", "HF_", "TRANSFORMERS_", "REGIONSET_", "OMP_", "MKL_", "AWS_", "GOOGLE_", "AZURE_")
WORKER_ENV_NAMES = ("NO_ALBUMENTATIONS_UPDATE", "WANDB_MODE", "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK")
LOCAL_ONLY_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS", "REGIONSET_WEIGHTS")
"""Never forwarded whatever their value: a profile in the driver's files, a key file, a search path."""
LOCAL_ONLY_SUFFIXES = ("_FILE", "_DIR", "_HOME", "_PATH", "_CACHE", "_BUNDLE", "_CONFIG")
"""Never forwarded: names of this form hold a path (``AWS_CONFIG_FILE``, ``YOLO_CONFIG_DIR``, ``HF_HOME``...)."""
SECRET_PARTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "SAS", "CONNECTION_STRING")
"""Names with these parts are credentials: forwarded whatever the value looks like."""

_WORKER_STAGES: dict[str, Stage] = {}


def travels(name: str, value: str) -> bool:
    """Whether the driver's variable ``name=value`` is forwarded to workers: a switch, a credential or an
    endpoint, but not a path (by name or by value) or a profile (``LOCAL_ONLY_ENV``)."""
    if not (name.startswith(WORKER_ENV_PREFIXES) or name in WORKER_ENV_NAMES):
        return False
    if name in LOCAL_ONLY_ENV or name.endswith(LOCAL_ONLY_SUFFIXES):
        return False
    if any(part in name for part in SECRET_PARTS):
        return True  # a secret may hold any character, "/" first included
    return not value.startswith(("/", "~", "./", "../"))


def worker_env() -> dict[str, str]:
    """The driver's environment variables that workers need to behave the same (``travels``)."""
    return {k: v for k, v in os.environ.items() if travels(k, v)}


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
