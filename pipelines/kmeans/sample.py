"""A uniform sample of the region embeddings, streamed from the Parquet shards in one pass.

Bottom-k sampling: every row gets a pseudo-random priority from a keyed hash of its ``region_id``
(pandas' SipHash), and the ``size`` rows with the smallest priorities are kept. That is a uniform
sample without replacement, held in ``size × d`` float32 at most (plus one record batch), and it
depends only on the *set* of region ids and the seed: the shard order, shard count and batch size do
not change it, which is what makes the fit (and so the labels) independent of shard order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from regionset.common.storage import arrow_source
from regionset.models.kmeans_index import embedding_matrix
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import shard_path
from regionset.schemas import EMBEDDINGS
from regionset.schemas.tables import REGIONS

BATCH_ROWS = 16_384


def _allowed_ids(out: Output, shard: int, sources: tuple[str, ...]) -> pa.Array:
    ids = []
    for source in sources:
        p = shard_path(out, f"{REGIONS}/{source}", shard)
        if p.exists():
            src, fs = arrow_source(p)  # a file, or an object read through the storage layer
            ids.append(pq.read_table(src, filesystem=fs, columns=["region_id"]).column(0).combine_chunks())
    return pa.concat_arrays(ids) if ids else pa.array([], pa.string())


def _batches(out: Output, shards: list[int], sources: tuple[str, ...], columns: list[str],
             batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The embeddings shards' record batches (``columns``, ``region_id`` first) of the chosen sources' rows."""
    for shard in shards:
        path = shard_path(out, EMBEDDINGS, shard)
        if not path.exists():
            continue
        allowed = _allowed_ids(out, shard, sources)
        src, fs = arrow_source(path)
        pf = pq.ParquetFile(src, filesystem=fs)
        # decoded on this thread: Arrow's pool (mimalloc) keeps a decode thread's freed pages resident
        # (measured: 25 MiB left per process after the level-0 read), this thread's it gives back
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
            batch = batch.filter(pc.is_in(batch.column(0), value_set=allowed))
            if batch.num_rows:
                yield batch


def iter_embeddings(out: Output, shards: list[int], sources: tuple[str, ...],
                    batch_rows: int = BATCH_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (region ids as an object array, (n, d) float32) batches of the chosen sources' embeddings.

    Args:
        out: the output folder or object-store prefix.
        shards: shard ids to read (missing embedding shards are skipped).
        sources: region sources to keep (``object``, ``text``): a region counts when its id is in
            that shard's ``regions/<source>`` table.
        batch_rows: rows per Parquet record batch (bounds memory).
    """
    for batch in _batches(out, shards, sources, ["region_id", "embedding"], batch_rows):
        yield batch.column(0).to_numpy(zero_copy_only=False), embedding_matrix(batch.column(1))


def iter_region_ids(out: Output, shards: list[int], sources: tuple[str, ...],
                    batch_rows: int = BATCH_ROWS) -> Iterator[np.ndarray]:
    """The region ids of ``iter_embeddings``, batch by batch, without reading the embeddings.

    Args:
        out: the output folder or object-store prefix.
        shards: shard ids to read.
        sources: region sources to keep.
        batch_rows: rows per Parquet record batch.
    """
    for batch in _batches(out, shards, sources, ["region_id"], batch_rows):
        yield batch.column(0).to_numpy(zero_copy_only=False)


def row_priority(ids: np.ndarray, seed: int) -> np.ndarray:
    """uint64 pseudo-random priority of each region id (keyed by ``seed``)."""
    key = f"{seed & 0xFFFFFFFFFFFF:016x}"[-16:]
    return pd.util.hash_array(np.asarray(ids, dtype=object), hash_key=key, categorize=False)


@dataclass
class Sample:
    """A uniform sample: ``ids`` and ``x`` sorted by priority, plus how many rows were seen."""

    ids: np.ndarray
    x: np.ndarray
    rows_seen: int


def uniform_sample(out: Output, shards: list[int], sources: tuple[str, ...], size: int, seed: int,
                   batch_rows: int = BATCH_ROWS, progress: Callable[..., None] | None = None) -> Sample:
    """Stream every embedding once and keep a uniform sample of at most ``size`` rows.

    Args:
        out: the output folder.
        shards: shard ids to read.
        sources: region sources to sample.
        size: sample size (memory: ``size × d × 4`` bytes).
        seed: the sampling seed.
        batch_rows: rows per record batch.
        progress: called as ``progress("sample", shards read, shards, rows seen)`` after each shard.
    """
    if size < 1:
        raise ValueError("kmeans.sample_size: must be >= 1")
    # Buffers hold the sample plus a margin; when full, the ``size`` smallest priorities are moved
    # to the front in place (only the rows that change slot are copied), so peak memory is the
    # buffers plus one batch whatever the number of rows streamed.
    cap = size + max(batch_rows, size // 4)
    pri = np.zeros(cap, np.uint64)
    ids = np.empty(cap, object)
    x: np.ndarray | None = None
    n = seen = 0
    for bid, bx in _with_progress(out, shards, sources, batch_rows, progress):
        seen += len(bid)
        bp = row_priority(bid, seed)
        if x is None:
            x = np.zeros((cap, bx.shape[1]), np.float32)
        if n >= size:
            keep = bp < pri[:n].max()
            bid, bx, bp = bid[keep], bx[keep], bp[keep]
        for lo in range(0, len(bp), cap - size):
            m = min(len(bp) - lo, cap - size)
            if n + m > cap:
                n = _compact(pri, ids, x, n, size)
            pri[n:n + m], ids[n:n + m], x[n:n + m] = bp[lo:lo + m], bid[lo:lo + m], bx[lo:lo + m]
            n += m
    if x is None:
        return Sample(np.zeros(0, object), np.zeros((0, 0), np.float32), 0)
    if n > size:
        n = _compact(pri, ids, x, n, size)
    order = np.lexsort((ids[:n].astype(str), pri[:n]))  # ids break (improbable) hash ties
    return Sample(ids[:n][order], x[:n][order], seen)


def _with_progress(out: Output, shards: list[int], sources: tuple[str, ...], batch_rows: int,
                   progress: Callable[..., None] | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``iter_embeddings`` shard by shard, reporting shards read and rows seen after each shard."""
    rows = 0
    for i, shard in enumerate(shards):
        for bid, bx in iter_embeddings(out, [shard], sources, batch_rows):
            rows += len(bid)
            yield bid, bx
        if progress is not None:
            progress("sample", i + 1, len(shards), rows)


def _compact(pri: np.ndarray, ids: np.ndarray, x: np.ndarray, n: int, size: int) -> int:
    """Move the ``size`` smallest priorities of the first ``n`` rows to slots ``[0, size)``."""
    top = np.zeros(n, bool)
    top[np.argpartition(pri[:n], size - 1)[:size]] = True
    holes = np.flatnonzero(~top[:size])
    movers = size + np.flatnonzero(top[size:])
    pri[holes], ids[holes], x[holes] = pri[movers], ids[movers], x[movers]
    return size
