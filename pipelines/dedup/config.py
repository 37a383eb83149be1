"""The config types of the dedup global steps (imports nothing of ``pipelines/``). The per-shard
side's config, ``DedupConfig``, is the stage's own (``stages/dedup.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SemDedupConfig:
    """Semantic region deduplication.

    Args:
        threshold: cosine at or above which a region duplicates a kept region of its leaf cluster.
        max_bytes: embeddings (as float32) held in memory at once; more clusters mean more passes.
    """

    threshold: float = 0.95
    max_bytes: int = 1 << 30
