"""Shard files on disk: names, atomic Parquet writes, completion markers (README "Output layout").

The shard id given at input sharding flows through every stage: ``part-00017.parquet`` exists in
every table folder. A completion marker ``_state/<stage>/part-NNNNN.json`` is written last, after
the output file has been renamed into place, so a marker always means a complete output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.shard_names import shard_id, shard_name
from schemas import SCHEMA_VERSION, check_shard
from schemas.validate import VERSION_KEY

STATE_DIR = "_state"
ROW_GROUP_ROWS = 1024


def shard_path(out: Path, folder: str, shard: int) -> Path:
    """Path of one shard of a table folder, refusing folder names that escape ``out``."""
    base = Path(out).resolve()
    path = (base / folder / shard_name(shard)).resolve()
    if base not in path.parents:
        raise ValueError(f"table folder {folder!r} escapes the output folder {base}")
    return path


def list_shards(out: Path, folder: str) -> list[int]:
    """Shard ids present in a table folder, sorted."""
    d = Path(out) / folder
    if not d.is_dir():
        return []
    return sorted(i for p in d.iterdir() if (i := shard_id(p.name)) is not None)


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_table(table: pa.Table, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> str:
    """Write ``table`` to ``path`` atomically (temp file + fsync + rename); return its sha256."""
    tmp = _atomic_target(path)
    meta = {**(table.schema.metadata or {}), VERSION_KEY: str(SCHEMA_VERSION).encode()}
    table = table.replace_schema_metadata(meta)
    try:
        pq.write_table(table, tmp, row_group_size=row_group_rows, compression="zstd")
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically."""
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_table(path: Path, folder: str | None = None) -> pa.Table:
    """Read one shard file; with ``folder``, check it for schema drift and upgrade an older shard
    that only lacks newer nullable columns (``schemas.check_shard``)."""
    table = pq.read_table(path)
    if folder is not None:
        table = check_shard(table, folder, str(path))
    return table


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Marker:
    """A stage × shard completion record."""

    stage: str
    shard: int
    config_hash: str
    input_hash: str
    output_sha256: str
    rows_in: int
    rows_out: int
    seconds: float
    counters: dict[str, int] = field(default_factory=dict)
    finished_at: float = field(default_factory=time.time)


def marker_path(out: Path, stage: str, shard: int) -> Path:
    """``_state/<stage>/part-NNNNN.json``."""
    return Path(out) / STATE_DIR / stage / shard_name(shard).replace(".parquet", ".json")


def read_marker(out: Path, stage: str, shard: int) -> Marker | None:
    """The marker of a stage × shard, or None if missing or unreadable (a torn write counts as missing)."""
    p = marker_path(out, stage, shard)
    try:
        return Marker(**json.loads(p.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_marker(out: Path, marker: Marker) -> None:
    """Write a marker atomically; call only after the output file is in place."""
    write_json(asdict(marker), marker_path(out, marker.stage, marker.shard))


def clean_temp_files(out: Path) -> int:
    """Remove temp files left by a killed writer; return how many were removed."""
    n = 0
    for pattern in (".*.tmp", ".*.tmp.wal"):
        for p in list(Path(out).rglob(pattern)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n
