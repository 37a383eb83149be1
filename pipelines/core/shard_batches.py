"""Shards grouped into batches for an orchestrator's mapped tasks (Airflow's ``max_map_length``).

Airflow refuses to map a task over more than ``[core] max_map_length`` items (1,024 by default). A
per-shard DAG run over more shards maps over batches instead: runs of consecutive shard ids, every
shard in exactly one batch, each batch one mapped task that runs its shards in sequence (a retry
skips the shards whose completion markers are there).
"""

from __future__ import annotations

import math


class TooManyBatchesError(ValueError):
    """A configured batch size leaves more batches than the orchestrator may map."""


def batch_size_for(n_shards: int, max_items: int, batch_size: int = 0) -> int:
    """Shards per mapped task: ``batch_size`` when given, else ``ceil(n_shards / max_items)`` (1 while
    the shards fit the map).

    Args:
        n_shards: the build's number of shards.
        max_items: the most items one mapped task may have (Airflow's ``max_map_length``).
        batch_size: a configured number of shards per task (0: the smallest that fits).

    Raises:
        ValueError: ``max_items`` < 1 or ``batch_size`` < 0.
        TooManyBatchesError: ``batch_size`` leaves more than ``max_items`` batches.
    """
    if max_items < 1:
        raise ValueError(f"max_map_length must be >= 1, got {max_items}")
    if batch_size < 0:
        raise ValueError(f"shards_per_task must be >= 0, got {batch_size}")
    size = batch_size or max(1, math.ceil(n_shards / max_items))
    if math.ceil(n_shards / size) > max_items:
        raise TooManyBatchesError(
            f"shards_per_task={size} makes {math.ceil(n_shards / size)} mapped tasks of {n_shards} shards, "
            f"over Airflow's max_map_length {max_items}: set shards_per_task >= "
            f"{math.ceil(n_shards / max_items)} (or 0: chosen to fit)")
    return size


def batch_shards(shards: list[int], max_items: int, batch_size: int = 0) -> list[list[int]]:
    """``shards`` (in order) cut into consecutive batches of ``batch_size_for(...)`` shards.

    Args:
        shards: the build's shard ids.
        max_items: the most items one mapped task may have (Airflow's ``max_map_length``).
        batch_size: a configured number of shards per task (0: the smallest that fits).
    """
    size = batch_size_for(len(shards), max_items, batch_size)
    return [list(shards[i:i + size]) for i in range(0, len(shards), size)]
