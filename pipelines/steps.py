"""The pipeline's shape, declared once: every step's name and kind, in run order.

A ``shard`` step is a stage run by an executor over every shard; a ``global`` step runs once over
all shards (reading and writing files). ``regionset.pipelines.config`` validates ``steps`` against it,
``regionset.pipelines.definition`` builds the steps from it, and the Airflow DAG is drawn from it. This module
imports nothing, so DAG files can read it at parse time.
"""

from __future__ import annotations

SHARD, GLOBAL = "shard", "global"

PIPELINE: tuple[tuple[str, str], ...] = (
    ("download", SHARD),
    ("dedup", SHARD),
    ("group_duplicates", GLOBAL),
    ("detect", SHARD),
    ("ocr", SHARD),
    ("embed", SHARD),
    ("regions", SHARD),  # opt-in: detect + ocr + embed fused (one decode per image), instead of them
    ("fit_kmeans", GLOBAL),
    ("assign", SHARD),
    ("semdedup", GLOBAL),
    ("pack", SHARD),
)
STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in PIPELINE)
# Opt-in steps run only when ``steps`` names them. semdedup: over random-weight embeddings (the
# offline default) every region looks alike and it would drop most of them (docs/curation.md).
# regions: the fused detect + ocr + embed (stages/regions.py), never together with any of them.
OPT_IN: tuple[str, ...] = ("semdedup", "regions")
FUSED: dict[str, tuple[str, ...]] = {"regions": ("detect", "ocr", "embed")}
DEFAULT_STEPS: tuple[str, ...] = tuple(name for name in STEP_NAMES if name not in OPT_IN)
# Every step that can run in one build with the separate region stages: the whole pipeline, opt-in
# steps included, without a fused step (it replaces its parts).
UNFUSED_STEPS: tuple[str, ...] = tuple(name for name in STEP_NAMES if name not in FUSED)
