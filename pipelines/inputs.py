"""Shard the input URL list into ``input/part-NNNNN.parquet`` (key, url, caption), in input order.

Keys follow img2dataset's format (shard id + index in shard), so a stable URL order gives stable
keys: appending URLs to the list only adds shards (and redoes the last, partial one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipelines.config import InputConfig
from pipelines.shards import list_shards, shard_path, write_table
from schemas import INPUT, input_schema
from stages.download.stage import make_key

_EXT = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "txt"}


class InputError(ValueError):
    """The URL list cannot be read."""


def _files(cfg: InputConfig) -> list[Path]:
    p = Path(cfg.path)
    if not cfg.path:
        raise InputError("input.path is empty: give the URL list (Parquet, CSV, JSONL or TXT)")
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in _EXT)
        if not files:
            raise InputError(f"input.path {p} holds no .parquet/.csv/.jsonl/.txt file")
        return files
    if not p.exists():
        raise InputError(f"input.path {p} does not exist")
    return [p]


def _read_file(path: Path, cfg: InputConfig) -> Iterator[pa.RecordBatch]:
    fmt = cfg.format if cfg.format != "auto" else _EXT.get(path.suffix)
    if fmt is None:
        raise InputError(f"{path}: unknown extension; set input.format")
    if fmt == "parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)
    elif fmt == "csv":
        delim = "\t" if path.suffix == ".tsv" else ","
        yield from pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    elif fmt == "jsonl":
        yield from pajson.read_json(path).to_batches()
    else:
        lines = [ln.rstrip("\r\n") for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        urls = [ln for ln in lines if ln.strip()]
        yield pa.record_batch({"url": pa.array(urls, pa.string())})


def iter_urls(cfg: InputConfig) -> Iterator[tuple[str | None, str | None]]:
    """Yield (url, caption) for every row of the input, in order."""
    for path in _files(cfg):
        for batch in _read_file(path, cfg):
            names = batch.schema.names
            if cfg.url_col not in names:
                raise InputError(f"{path}: no column {cfg.url_col!r} (columns: {names}); set input.url_col")
            urls = batch.column(names.index(cfg.url_col)).cast(pa.string()).to_pylist()
            caps = (batch.column(names.index(cfg.caption_col)).cast(pa.string()).to_pylist()
                    if cfg.caption_col in names else [None] * len(urls))
            yield from zip(urls, caps)


def shard_input(cfg: InputConfig, out: Path) -> list[int]:
    """Write the input shards that changed; return every shard id of the current input."""
    shards: list[int] = []
    buf: list[tuple[str | None, str | None]] = []

    def flush(shard: int) -> None:
        keys = [make_key(shard, i, cfg.shard_size) for i in range(len(buf))]
        table = pa.Table.from_pydict(
            {"key": keys, "url": [u for u, _ in buf], "caption": [c for _, c in buf]}, schema=input_schema())
        path = shard_path(out, INPUT, shard)
        if not (path.exists() and pq.read_table(path).equals(table)):
            write_table(table, path)
        shards.append(shard)
        buf.clear()

    for row in iter_urls(cfg):
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
