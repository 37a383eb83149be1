"""Deduplication's global steps: ``step.py`` (``group_duplicates``, incremental), ``group.py`` (the
DuckDB grouping), ``candidates.py``, ``against.py`` (evaluation images for decontamination),
``semdedup.py`` (semantic region duplicates), ``config.py`` (their config types). Re-exports nothing."""
