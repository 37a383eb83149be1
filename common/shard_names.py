"""How shard files are named: ``part-00017.parquet`` is shard 17 in every table folder."""

from __future__ import annotations

import re

STATE_DIR = "_state"  # completion markers: ``OUT/_state/<stage>/part-NNNNN.json``
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")


def shard_name(shard: int) -> str:
    """``part-00017.parquet`` for shard 17.

    Args:
        shard: the shard id (>= 0).
    """
    if shard < 0:
        raise ValueError(f"shard id must be >= 0, got {shard}")
    return f"part-{shard:05d}.parquet"


def shard_id(filename: str) -> int | None:
    """The shard id of a shard file's name, or None for any other name (temp files, markers).

    Args:
        filename: a file name without folders.
    """
    m = _PART_RE.match(filename)
    return int(m.group(1)) if m else None
