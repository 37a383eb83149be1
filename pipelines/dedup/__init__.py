"""Image deduplication's global side: ``step.py`` (the ``group_duplicates`` step, incremental),
``group.py`` (the DuckDB grouping), ``against.py`` (evaluation images for decontamination)."""

from regionset.pipelines.dedup.step import group_duplicates

__all__ = ["group_duplicates"]
