"""The sample of the per-parent fit, partitioned by level-0 parent (``regionset.pipelines.kmeans.distributed``).

``thresholds`` finds the priority cut-offs of the bottom-k samples (``sample.row_priority``) in one
pass; ``read_sample`` reads the rows under a cut-off sorted by priority; ``partition`` writes every
embedding shard's sample rows as ``WORK/part-<shard>/{x,pri,offsets}.npy`` sorted by (nearest
level-0 centroid, priority), so ``parent_points`` reads only one parent's slice of each file
(a seek on disk, a ranged read on an object store). A part's ``offsets.npy`` is written last and
commits it (no rename, the same on object stores): a part without it is rewritten, and never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from regionset.common.files import load_npy, read_npy_rows, save_npy
from regionset.common.memory import release_memory
from regionset.common.storage import RemotePath, as_path
from regionset.models.kmeans_index import nearest_centroids
from regionset.pipelines.core.output import Output
from regionset.pipelines.kmeans.sample import iter_embeddings, iter_region_ids, row_priority


def thresholds(out: Output, shards: list[int], sources: tuple[str, ...], seed: int, sizes: list[int]) -> tuple[list[int], int]:
    """Thresholds: the ``s``-th smallest priority for each ``s`` in ``sizes`` (uint64), rows seen."""
    keep = max(sizes)
    best = np.zeros(0, np.uint64)
    seen = 0
    for shard in shards:
        for ids in iter_region_ids(out, [shard], sources):  # the embeddings are not decoded
            seen += len(ids)
            best = np.concatenate([best, row_priority(ids, seed)])
            if len(best) > 2 * keep:
                best = np.partition(best, keep - 1)[:keep]
        release_memory()
    best = np.sort(best)[:keep]
    if not len(best):
        return [0 for _ in sizes], 0
    return [int(best[min(s, len(best)) - 1]) for s in sizes], seen


def read_sample(out: Output, shards: list[int], sources: tuple[str, ...], seed: int, limit: int,
                spherical: bool) -> tuple[np.ndarray, np.ndarray]:
    """(x, priorities) of the rows with priority <= ``limit``, sorted by priority.

    Memory: the rows kept, one decoded record batch, and one sorted copy of the rows kept."""
    xs, ps = [], []
    for shard in shards:
        for ids, x in iter_embeddings(out, [shard], sources):
            p = row_priority(ids, seed)
            m = p <= np.uint64(limit)
            xs.append(x if m.all() else x[m])  # every row kept: no copy
            ps.append(p[m])
            del x  # the batch goes before the next one is decoded
        # each shard's decoded batches were freed, but glibc keeps them in its heap behind the small
        # rows kept (measured: +36 MiB over 32 shards for a 0.5 MB sample): give them back per shard
        release_memory()
    p = np.concatenate(ps) if ps else np.zeros(0, np.uint64)
    order = np.argsort(p, kind="stable")
    x = _take(xs, order) if xs else np.zeros((0, 0), np.float32)
    if spherical:  # in place; the same values as ``l2_normalize``
        np.divide(x, np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), out=x)
    return x, p[order]


def _drained(pieces: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The list's items in order, each removed from it as it is yielded."""
    pieces.reverse()
    while pieces:
        yield pieces.pop()


def _take(pieces: Iterable[np.ndarray], order: np.ndarray) -> np.ndarray:
    """``np.concatenate(list(pieces))[order]``, each piece copied into place as it comes: the result
    and one piece, never a second whole copy (a list is emptied as it is read, freeing each piece).
    Pieces come in input-row order; ``order`` is the argsort of the whole."""
    where = np.empty(len(order), np.int64)
    where[order] = np.arange(len(order))  # the output row of every input row
    x, start = None, 0
    for piece in _drained(pieces) if isinstance(pieces, list) else pieces:
        if x is None:
            x = np.empty((len(order), *piece.shape[1:]), piece.dtype)
        x[where[start:start + len(piece)]] = piece
        start += len(piece)
    return x if x is not None else np.zeros((0, 0), np.float32)


def partition(out: Output, work: Path | RemotePath, shards: list[int], sources: tuple[str, ...], seed: int, limit: int,
               level0: np.ndarray, spherical: bool) -> None:
    """Write every shard's sample rows sorted by (level-0 parent, priority), with parent offsets."""
    k0 = len(level0)
    done = {part.name for part in committed_parts(work)}
    for shard in shards:
        part = work / f"part-{shard:05d}"
        if part.name in done:
            continue
        x, p = read_sample(out, [shard], sources, seed, limit, spherical)
        members = nearest_centroids(x, level0, "numpy")[0] if len(x) else np.zeros(0, np.int64)
        order = np.lexsort((p, members))
        x = x[order] if len(x) else np.zeros((0, level0.shape[1]), np.float32)  # the old rows go here
        save_npy(part / "x.npy", x)
        del x
        save_npy(part / "pri.npy", p[order])
        save_npy(part / "offsets.npy", np.concatenate([[0], np.cumsum(np.bincount(members, minlength=k0))]))


def committed_parts(work: Path | RemotePath) -> list[Path | RemotePath]:
    """The partitions of ``work`` whose ``offsets.npy`` (their commit) exists, in shard order (one listing)."""
    return sorted(f.parent for f in as_path(work).glob("part-*/offsets.npy"))


def parent_points(work: Path | RemotePath, parent: int) -> np.ndarray:
    """The sample points of one level-0 parent, from every committed partition, sorted by priority
    (only that parent's rows of each file are read). Memory: the points, plus one partition's slice
    while it is read (the priorities are read first, so each slice goes straight to its rows)."""
    slices, ps = [], []
    for part in committed_parts(work):
        off = load_npy(part / "offsets.npy")
        lo, hi = int(off[parent]), int(off[parent + 1])
        if hi > lo:
            slices.append((part, lo, hi))
            ps.append(read_npy_rows(part / "pri.npy", lo, hi))
    if not slices:
        return np.zeros((0, 0), np.float32)
    order = np.argsort(np.concatenate(ps), kind="stable")
    return _take((read_npy_rows(part / "x.npy", lo, hi) for part, lo, hi in slices), order)
