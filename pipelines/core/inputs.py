"""Shard the input URL list into ``input/part-NNNNN.parquet`` (key, url, caption), in input order.

Keys follow img2dataset's format (shard id + index in shard), so a stable URL order gives stable
keys: appending URLs to the list only adds shards (and redoes the last, partial one).

A file that cannot be read (bad JSON, a ragged CSV row, a non-Parquet ``.parquet``, a column that
changes type) raises ``InputError`` naming the file and, where the reader can tell, the line; so
does an input with no URL at all. Bytes that are not UTF-8 are replaced (U+FFFD) and counted as
``input:replaced_bytes``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from regionset.common.shard_names import shard_id
from regionset.common.storage import as_path, is_remote
from regionset.common.typed_config import ConfigError, one_line
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import (
    encode_table,
    list_shards,
    read_table,
    remember_sha256,
    shard_path,
    write_table,
)
from regionset.schemas import INPUT, input_schema
from regionset.stages.download.stage import make_key


@dataclass(frozen=True)
class InputConfig:
    """The URL list.

    Args:
        path: a Parquet, CSV, JSONL or TXT file (one URL a line), or a folder of such files.
        format: file format; ``auto`` picks it from the extension.
        url_col: column holding the URL.
        caption_col: column holding the caption (optional in the file).
        shard_size: URLs per shard; the shard is the unit of work, resume and parallelism.
    """

    path: str = ""
    format: Literal["auto", "parquet", "csv", "jsonl", "txt"] = "auto"
    url_col: str = "url"
    caption_col: str = "caption"
    shard_size: int = 1000

    def check(self) -> None:
        """Raise ConfigError naming the key for a setting that cannot work."""
        if self.shard_size < 1:
            raise ConfigError("input.shard_size: must be >= 1")



_EXT = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "txt"}


class InputError(ValueError):
    """The URL list cannot be read; the message (one line) names the file."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


def _files(cfg: InputConfig) -> list[Path]:
    if not cfg.path:
        raise InputError("input.path is empty: give the URL list (Parquet, CSV, JSONL or TXT)")
    p = as_path(cfg.path)
    if is_remote(p):  # one listing: a prefix of URL lists, or one object
        files = sorted(f for f in p.iterdir() if f.suffix in _EXT)
        if files:
            return files
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in _EXT)
        if not files:
            raise InputError(f"input.path {p} holds no .parquet/.csv/.jsonl/.txt file")
        return files
    if not p.exists():
        raise InputError(f"input.path {p} does not exist")
    return [p]


_BAD_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8


def _decode(data: bytes, counters: Counter) -> str:
    text = data.decode("utf-8", errors="surrogateescape")
    text, n = _BAD_BYTE.subn("\ufffd", text)
    if n:
        counters["input:replaced_bytes"] += n
    return text


def _json_kind(v: object) -> str | None:
    if v is None:
        return None
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(type(v), "object")


def _jsonl_where(path: Path) -> str:
    """The first line that is not a JSON object, or where a key changes type (pyarrow's rows are per block)."""
    kinds: dict[str, str] = {}
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                return f"line {lineno}: not valid JSON"
            if not isinstance(obj, dict):
                return f"line {lineno}: not a JSON object"
            for k, v in obj.items():
                kind = _json_kind(v)
                if kind and kinds.setdefault(k, kind) != kind:
                    return f"line {lineno}: {k!r} changed from {kinds[k]} to {kind}"
    return ""


def _csv_where(path: Path, delim: str) -> str:
    """The first row whose field count differs from the header's."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=delim)
            width = None
            for row in reader:
                if width is None:
                    width = len(row)
                elif row and len(row) != width:
                    return f"line {reader.line_num}: {len(row)} fields, the header has {width}"
    except csv.Error:
        pass
    return ""


def _unreadable(path: Path, fmt: str, err: Exception, where: str) -> InputError:
    detail = " ".join(str(err).split())[:200]
    return InputError(f"{path}: cannot read as {fmt}: {where + ' ' if where else ''}({detail})")


def _read_file(path: Path, cfg: InputConfig, counters: Counter) -> Iterator[pa.RecordBatch]:
    fmt = cfg.format if cfg.format != "auto" else _EXT.get(path.suffix)
    if fmt is None:
        raise InputError(f"{path}: unknown extension; set input.format")
    try:
        if path.stat().st_size == 0:
            return  # no URLs: counted by iter_urls
        for batch in _read_batches(path, fmt, counters):
            batch.schema.names  # noqa: B018 (column names that are not UTF-8 raise here, not in the caller)
            yield batch
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        where = (_jsonl_where(path) if fmt == "jsonl"
                 else _csv_where(path, "\t" if path.suffix == ".tsv" else ",") if fmt == "csv" else "")
        raise _unreadable(path, fmt, err, where) from None


def _read_batches(path: Path, fmt: str, counters: Counter) -> Iterator[pa.RecordBatch]:
    delim = "\t" if path.suffix == ".tsv" else ","
    if is_remote(path) and fmt != "txt":  # an object store: the readers take an open file
        path = path.open("rb")
    if fmt == "parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)
    elif fmt == "csv":
        yield from pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    elif fmt == "jsonl":
        yield from pajson.read_json(path).to_batches()
    else:
        lines = [ln.rstrip("\r\n") for ln in _decode(path.read_bytes(), counters).splitlines()]
        urls = [ln for ln in lines if ln.strip()]
        yield pa.record_batch({"url": pa.array(urls, pa.string())})


def _texts(path: Path, batch: pa.RecordBatch, name: str, counters: Counter) -> list[str | None]:
    col = batch.column(batch.schema.names.index(name))
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):  # a CSV with non-UTF-8 bytes
        return [None if b is None else _decode(b, counters) for b in col.to_pylist()]
    try:
        return col.cast(pa.string()).to_pylist()
    except pa.ArrowException:
        raise InputError(f"{path}: column {name!r} holds {col.type}, not text") from None


def iter_urls(cfg: InputConfig, counters: Counter | None = None) -> Iterator[tuple[str | None, str | None]]:
    """Yield (url, caption) for every row of the input, in order.

    Args:
        cfg: the input section of the config.
        counters: gets ``input:replaced_bytes`` (bytes that were not UTF-8), when given.
    """
    counters = Counter() if counters is None else counters
    rows = 0
    for path in _files(cfg):
        for batch in _read_file(path, cfg, counters):
            names = batch.schema.names
            if cfg.url_col not in names:
                raise InputError(f"{path}: no column {cfg.url_col!r} (columns: {names}); set input.url_col")
            urls = _texts(path, batch, cfg.url_col, counters)
            caps = (_texts(path, batch, cfg.caption_col, counters)
                    if cfg.caption_col in names else [None] * len(urls))
            rows += len(urls)
            yield from zip(urls, caps)
    if rows == 0:
        raise InputError(f"no URLs in {cfg.path}")


def _same_remote(path: Path, table: pa.Table, token: str | None) -> bool:
    """Whether the object holds ``table``; its sha256 is remembered. No request when the listed ETag is
    the MD5 of the bytes ``write_table`` would store (S3's ETag of a single PUT), else one GET."""
    data = encode_table(table)
    if token is not None and token.strip('"') == hashlib.md5(data).hexdigest():  # noqa: S324 (not security)
        remember_sha256(path, hashlib.sha256(data).hexdigest())
        return True
    data = path.read_bytes()
    remember_sha256(path, hashlib.sha256(data).hexdigest())
    return pq.read_table(pa.BufferReader(data)).equals(table)


def shard_input(cfg: InputConfig, out: Output, counters: Counter | None = None) -> list[int]:
    """Write the input shards that changed; return every shard id of the current input.

    Args:
        cfg: the input section of the config.
        out: the output folder.
        counters: gets the input counters (``input:replaced_bytes``), when given.
    """
    shards: list[int] = []
    buf: list[tuple[str | None, str | None]] = []
    # object store: one listing (names and ETags), no HEAD per shard
    present = {shard_id(n): tok for n, tok in (out / INPUT).versions().items()} if is_remote(out) else None

    def flush(shard: int) -> None:
        keys = [make_key(shard, i, cfg.shard_size) for i in range(len(buf))]
        table = pa.Table.from_pydict(
            {"key": keys, "url": [u for u, _ in buf], "caption": [c for _, c in buf]}, schema=input_schema())
        path = shard_path(out, INPUT, shard)
        if present is not None:
            if not (shard in present and _same_remote(path, table, present[shard])):
                write_table(table, path)
        elif not (path.exists() and read_table(path).equals(table)):
            write_table(table, path)
        shards.append(shard)
        buf.clear()

    for row in iter_urls(cfg, counters):
        buf.append(row)
        if len(buf) == cfg.shard_size:
            flush(len(shards))
    if buf:
        flush(len(shards))
    stale = [s for s in list_shards(out, INPUT) if s >= len(shards)]
    if stale:
        raise InputError(f"the input list is shorter than in an earlier build of {out} "
                         f"(shards {stale[0]}..{stale[-1]} have no URLs now); use a new output folder")
    return shards
