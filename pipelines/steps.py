"""The pipeline's shape, declared once: every step's name and kind, in run order.

A ``shard`` step is a stage run by an executor over every shard; a ``global`` step runs once over
all shards (reading and writing files). ``pipelines.config`` validates ``steps`` against it,
``pipelines.definition`` builds the steps from it, and the Airflow DAG is drawn from it. This module
imports nothing, so DAG files can read it at parse time.
"""

from __future__ import annotations

SHARD, GLOBAL = "shard", "global"

PIPELINE: tuple[tuple[str, str], ...] = (
    ("download", SHARD),
    ("detect", SHARD),
    ("ocr", SHARD),
    ("embed", SHARD),
    ("fit_kmeans", GLOBAL),
    ("assign", SHARD),
    ("pack", SHARD),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in PIPELINE)
