"""The ``semdedup`` global step: semantic region duplicates within each leaf cluster (SemDeDup-style).

Within a leaf cluster, regions are visited nearest-to-the-centroid first (ties: region_id); a region
whose embedding cosine to an already kept region of the cluster is >= ``threshold`` is a duplicate
of the most similar one, otherwise it is kept. Clusters are processed in buckets (``cluster_id %
buckets``), each bucket's embeddings read from every shard in turn, so at most about
``max_bytes`` of embeddings are in memory. Output: ``region_duplicates/part-NNNNN.parquet`` by the
region's shard; a file whose rows did not change is not rewritten (pack is not redone for it).
``OUT/_state/semdedup.json`` commits the folder: deleted before any file is written and written
last, so on an object store (no rename) files no state file commits are never read and the next
build deletes them (``regionset.pipelines.core.cleanup.clean_temp_files``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regionset.pipelines.core.output import Output
from regionset.pipelines.core.outputs import SEMDEDUP_STATE
from regionset.pipelines.core.shards import (
    STATE_DIR,
    list_shards,
    read_table,
    shard_path,
    write_json,
    write_table,
)
from regionset.pipelines.dedup.config import SemDedupConfig
from regionset.pipelines.executors.base import Executor
from regionset.schemas import EMBEDDINGS, LABELS, REGION_DUPLICATES, region_duplicates_schema

_BLOCK = 2048
STATE_FILE = SEMDEDUP_STATE  # under OUT/_state: the commit of region_duplicates/


def greedy_duplicates(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For L2-normalised rows ``x`` in visiting order: (index of the kept row each row duplicates or
    -1 when kept, its cosine).

    Args:
        x: (n, d) float32 embeddings of one cluster, in the order regions are considered.
        threshold: the cosine threshold.
    """
    n = len(x)
    dup_of, cos = np.full(n, -1, np.int64), np.zeros(n, np.float32)
    kept: list[int] = []
    for start in range(0, n, _BLOCK):
        blk = x[start:start + _BLOCK]
        prev_best, prev_cos = np.full(len(blk), -1), np.full(len(blk), -np.inf, np.float32)
        if kept:
            s = blk @ x[kept].T
            j = s.argmax(1)
            prev_best, prev_cos = np.asarray(kept)[j], s[np.arange(len(blk)), j]
        inner = blk @ blk.T
        kept_here: list[int] = []
        for i in range(len(blk)):
            best, c = prev_best[i], prev_cos[i]
            if kept_here:
                k = int(np.argmax(inner[i, kept_here]))
                if inner[i, kept_here[k]] > c:
                    best, c = start + kept_here[k], inner[i, kept_here[k]]
            if best >= 0 and c >= threshold:
                dup_of[start + i], cos[start + i] = best, c
            else:
                kept_here.append(i)
        kept.extend(start + i for i in kept_here)
    return dup_of, cos


def _bucket_rows(out: Output, shards: list[int], buckets: int, b: int) -> tuple[pa.Table, np.ndarray]:
    """Labels (region_id, key, cluster_id, distance, shard) of bucket ``b`` and their embeddings."""
    labels, vectors = [], []
    for s in shards:
        lab = read_table(shard_path(out, LABELS, s)).select(["region_id", "key", "cluster_id", "distance"])
        cid = pc.fill_null(lab.column("cluster_id"), -1).to_numpy(zero_copy_only=False)
        lab = lab.filter(pa.array((cid >= 0) & (cid % buckets == b)))
        if lab.num_rows == 0:
            continue
        emb = read_table(shard_path(out, EMBEDDINGS, s)).select(["region_id", "embedding"])
        idx = pc.index_in(lab.column("region_id"), value_set=emb.column("region_id").combine_chunks())
        lab, idx = lab.filter(idx.is_valid()), idx.filter(idx.is_valid())
        col = emb.column("embedding").combine_chunks().take(idx.combine_chunks())
        dim = col.type.list_size
        vectors.append(np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim))
        labels.append(lab.append_column("shard", pa.array(np.full(lab.num_rows, s, np.int32))))
    if not labels:
        return pa.table({}), np.zeros((0, 1), np.float32)
    return pa.concat_tables(labels), np.concatenate(vectors)


def semdedup(out: Output, sc: SemDedupConfig, executor: Executor, shards: list[int]) -> dict[str, Any]:
    """Flag semantic region duplicates of every leaf cluster into ``OUT/region_duplicates``.

    Args:
        out: the output folder.
        sc: the ``semdedup`` section.
        executor: the build's executor (the step runs in this process).
        shards: the build's shard ids.
    """
    present = set(list_shards(out, LABELS)) & set(list_shards(out, EMBEDDINGS))
    ready = [s for s in shards if s in present]
    if not ready:
        return {"skipped": "no labels"}
    n_rows = sum(read_table(shard_path(out, LABELS, s)).num_rows for s in ready)
    dim = read_table(shard_path(out, EMBEDDINGS, ready[0])).schema.field("embedding").type.list_size
    buckets = max(1, math.ceil(n_rows * dim * 4 / sc.max_bytes))
    rows: dict[int, list[dict]] = defaultdict(list)
    for b in range(buckets):
        lab, x = _bucket_rows(out, ready, buckets, b)
        if lab.num_rows == 0:
            continue
        ids, keys = lab.column("region_id").to_pylist(), lab.column("key").to_pylist()
        shard_of = lab.column("shard").to_numpy()
        cl = lab.column("cluster_id").to_numpy()
        dist = lab.column("distance").fill_null(0).to_numpy(zero_copy_only=False)
        order = np.array(sorted(range(len(ids)), key=lambda i: (cl[i], dist[i], ids[i])), np.int64)
        for c in np.unique(cl):
            members = order[cl[order] == c]
            dup_of, cos = greedy_duplicates(x[members], sc.threshold)
            for i in np.flatnonzero(dup_of >= 0):
                m = members[i]
                rows[int(shard_of[m])].append({"region_id": ids[m], "key": keys[m], "cluster_id": int(c),
                                               "duplicate_of": ids[members[dup_of[i]]], "cosine": float(cos[i])})
    written = 0
    have = set(list_shards(out, REGION_DUPLICATES))
    state = out / STATE_DIR / STATE_FILE
    state.unlink(missing_ok=True)  # uncommitted until the new state is written, last
    for s in ready:
        table = pa.Table.from_pylist(sorted(rows.get(s, []), key=lambda r: r["region_id"]),
                                     schema=region_duplicates_schema())
        path = shard_path(out, REGION_DUPLICATES, s)
        if s in have and read_table(path).equals(table):
            continue
        write_table(table, path)
        written += 1
    write_json({"threshold": sc.threshold, "shards": sorted(ready)}, state)
    return {"region_duplicates": sum(len(v) for v in rows.values()), "buckets": buckets, "shards_written": written}
