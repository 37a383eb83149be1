"""Shard files on disk: names, atomic Parquet writes, completion markers (README "Output layout").

The shard id given at input sharding flows through every stage: ``part-00017.parquet`` exists in
every table folder. An attempt at a shard writes its bytes to an attempt object of its own
(``_state/_attempts/<folder>/part-NNNNN.<sha16>.parquet``), commits the completion marker
``_state/<stage>/part-NNNNN.json`` conditionally (one attempt's marker wins; it names that object, its
size and sha256), and only then is the named object copied to ``part-NNNNN.parquet``
(``pipelines/core/attempts.py``). A marker thus always describes the shard file readers open.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from regionset.common.shard_names import STATE_DIR, shard_id, shard_name
from regionset.common.storage import RemotePath, is_remote
from regionset.pipelines.core.fence import check_commit
from regionset.schemas import SCHEMA_VERSION, check_shard
from regionset.schemas.validate import VERSION_KEY

ROW_GROUP_ROWS = 1024
ATTEMPTS_DIR = "_attempts"  # ``_state/_attempts/<folder>/``: one object per attempt at a shard


def shard_path(out: Path | RemotePath, folder: str, shard: int) -> Path | RemotePath:
    """Path of one shard of a table folder, refusing folder names that escape ``out``."""
    if is_remote(out):
        return out / folder / shard_name(shard)  # RemotePath refuses ``..``
    base = Path(out).resolve()
    path = (base / folder / shard_name(shard)).resolve()
    if base not in path.parents:
        raise ValueError(f"table folder {folder!r} escapes the output folder {base}")
    return path


def attempts_folder(out: Path | RemotePath) -> Path | RemotePath:
    """``_state/_attempts/``: where attempts stage a shard's bytes before their marker is committed.

    Args:
        out: the output's root.
    """
    return out / STATE_DIR / ATTEMPTS_DIR


def attempt_path(out: Path | RemotePath, folder: str, shard: int, sha: str) -> Path | RemotePath:
    """``_state/_attempts/<folder>/part-NNNNN.<sha16>.parquet``: named by content, so two attempts that
    made different bytes never share an object, and two that made the same bytes write the same bytes.

    Args:
        out: the output's root.
        folder: the table folder the shard belongs to.
        shard: the shard id.
        sha: the sha256 of the attempt's bytes.
    """
    if any(part in ("", ".", "..") for part in folder.split("/")):
        raise ValueError(f"table folder {folder!r} escapes the attempts folder")
    return attempts_folder(out) / folder / shard_name(shard).replace(".parquet", f".{sha[:16]}.parquet")


def list_shards(out: Path, folder: str) -> list[int]:
    """Shard ids present in a table folder, sorted."""
    d = out / folder
    if not is_remote(d) and not d.is_dir():
        return []
    return sorted(i for p in d.iterdir() if (i := shard_id(p.name)) is not None)  # remote: one listing


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _versioned(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), VERSION_KEY: str(SCHEMA_VERSION).encode()})


def encode_table(table: pa.Table, row_group_rows: int = ROW_GROUP_ROWS) -> bytes:
    """The bytes ``write_table`` stores for ``table`` (Parquet, zstd, schema version in the metadata).

    Args:
        table: the shard's rows.
        row_group_rows: rows per row group.
    """
    buf = pa.BufferOutputStream()
    pq.write_table(_versioned(table), buf, row_group_size=row_group_rows, compression="zstd")
    return buf.getvalue().to_pybytes()


def write_table(table: pa.Table, path: Path | RemotePath, row_group_rows: int = ROW_GROUP_ROWS) -> str:
    """Write ``table`` to ``path`` atomically; return its sha256.

    Local disk: temp file + fsync + rename. Object store: one PUT of the final object (atomic, no
    rename); the marker written after it is the commit (README "Object storage"). Either way the
    build's lock is checked right before (``pipelines/core/fence.py``).
    """
    if is_remote(path):
        data = encode_table(table, row_group_rows)
        check_commit(path)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        remember_sha256(path, digest)
        return digest
    table = _versioned(table)
    tmp = _atomic_target(path)
    try:
        pq.write_table(table, tmp, row_group_size=row_group_rows, compression="zstd")
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
            os.fsync(f.fileno())
        check_commit(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (temp + rename locally, one PUT on an object store), after checking the
    build's lock (``pipelines/core/fence.py``)."""
    check_commit(path)
    if is_remote(path):
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        return
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_table(path: Path, folder: str | None = None) -> pa.Table:
    """Read one shard file; with ``folder``, check it for schema drift and upgrade an older shard
    that only lacks newer nullable columns (``regionset.schemas.check_shard``)."""
    table = pq.read_table(pa.BufferReader(path.read_bytes())) if is_remote(path) else pq.read_table(path)
    if folder is not None:
        table = check_shard(table, folder, str(path))
    return table


_KNOWN_SHA: dict[str, str] = {}  # object-store shards this process wrote or saw committed


def remember_sha256(path: Path | RemotePath, sha: str) -> None:
    """Remember an object-store shard's sha256 (from its marker) so planning need not re-read it.

    Args:
        path: the shard's path.
        sha: its sha256, as its marker carries it.
    """
    if is_remote(path):
        _KNOWN_SHA[str(path)] = sha


def forget_sha256() -> None:
    """Forget every remembered object-store sha256 (a new build starts from what the store holds)."""
    _KNOWN_SHA.clear()


def known_sha256(path: Path | RemotePath) -> str:
    """sha256 of a shard file: remembered for object-store shards this build wrote, else read.

    Args:
        path: the shard's path.
    """
    return _KNOWN_SHA.get(str(path)) or file_sha256(path)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    if is_remote(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()  # one GET (no HEAD, no ranged reads)
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
    # CPU milliseconds of parts of the work (``cpu_ms:*``): they vary run to run, so they are kept
    # apart from ``counters``, which two builds of the same input share.
    timings: dict[str, int] = field(default_factory=dict)
    # The attempt object this marker vouches for (relative to the output, ``attempt_path``) and its
    # size in bytes; empty / -1 in markers written before attempt objects (their shard file is the object).
    object: str = ""
    size: int = -1


def marker_path(out: Path, stage: str, shard: int) -> Path:
    """``_state/<stage>/part-NNNNN.json``."""
    return out / STATE_DIR / stage / shard_name(shard).replace(".parquet", ".json")


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
