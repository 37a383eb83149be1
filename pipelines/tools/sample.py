"""``regionset sample``: a region subset drawn from the cluster tree, balanced hierarchically or at random.

Balanced (the hierarchical sampling of Vo et al. 2024, "Automatic Data Curation for Self-Supervised
Learning"): the target is shared equally among the level-0 clusters; a cluster smaller than its
share gives all its regions and the rest is shared among the others (water filling); each
cluster's quota is then shared among its children the same way, down to the leaves, where regions
are drawn at random. Only cluster sizes pass through Python: the per-leaf draw runs in DuckDB,
ordered by ``md5(seed || region_id)``, so a seed gives the same sample on any machine.
Random: ``size`` regions in that order, ignoring clusters. Only clustered (object) regions are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa

from regionset.common.storage import RemotePath, as_path, is_remote
from regionset.pipelines.core.catalog import committed_files, register_storage
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import list_shards, shard_path, write_table
from regionset.schemas import LABELS

Strategy = Literal["balanced", "random"]


def water_fill(sizes: list[int], target: int, rng: np.random.Generator) -> list[int]:
    """Quotas summing to ``min(target, sum(sizes))``, as equal as the sizes allow.

    Args:
        sizes: capacity of each cluster.
        target: regions to share.
        rng: breaks ties for the remainder of the integer division.
    """
    quotas = [0] * len(sizes)
    left, todo = min(target, sum(sizes)), sorted(range(len(sizes)), key=lambda i: sizes[i])
    for n, i in enumerate(todo):  # smallest first: what a small cluster cannot take passes on
        share = left // (len(todo) - n)
        quotas[i] = min(sizes[i], share)
        left -= quotas[i]
    for i in rng.permutation(len(sizes)):  # the remainder, one each, to clusters with room
        if left == 0:
            break
        if quotas[i] < sizes[i]:
            quotas[i] += 1
            left -= 1
    return quotas


def _leaf_quotas(paths: list[tuple[int, ...]], counts: list[int], target: int, seed: int) -> dict[tuple, int]:
    """Quota per leaf path, shared down the tree level by level."""
    rng = np.random.default_rng(seed)
    quotas: dict[tuple, int] = {}

    def split(prefix: tuple, members: list[int], quota: int) -> None:
        depth = len(prefix)
        if depth == len(paths[members[0]]):
            quotas[prefix] = quota
            return
        children: dict[int, list[int]] = {}
        for m in members:
            children.setdefault(paths[m][depth], []).append(m)
        ids = sorted(children)
        sizes = [sum(counts[m] for m in children[c]) for c in ids]
        for c, q in zip(ids, water_fill(sizes, quota, rng)):
            split((*prefix, c), children[c], q)

    split((), list(range(len(paths))), target)
    return quotas


def sample_regions(out: Output, size: int, strategy: Strategy = "balanced", seed: int = 0) -> pa.Table:
    """The sampled regions (region_id, key, cluster_path, cluster_id), sorted by region_id.

    Args:
        out: a build's output folder or object-store prefix (its committed ``labels`` shards are read).
        size: regions to draw (fewer when there are fewer clustered regions).
        strategy: ``balanced`` over the cluster tree, or ``random``.
        seed: the sample is a function of the labels and the seed.
    """
    out = Output.of(out)
    if is_remote(out):  # committed shards only (the marker is the commit), read through fsspec
        files = committed_files(out, LABELS)
    else:
        files = [str(shard_path(out, LABELS, s)) for s in list_shards(out, LABELS)]
    if not files:
        raise FileNotFoundError(f"{out}/{LABELS}: no labels to sample from; run the build through assign first")
    if strategy not in ("balanced", "random"):
        raise ValueError(f"--strategy: unknown strategy {strategy!r}; known: balanced, random")

    con = duckdb.connect()
    try:
        register_storage(con, out)  # an object-store output's labels are read through fsspec
        con.execute(f"""CREATE TEMP VIEW r AS SELECT region_id, key, cluster_path, cluster_id,
                          md5('{int(seed)}:' || region_id) AS draw
                        FROM read_parquet({files!r}) WHERE cluster_path IS NOT NULL""")
        if strategy == "random":
            query = f"SELECT * FROM r ORDER BY draw LIMIT {int(size)}"
        else:
            rows = con.execute("SELECT cluster_path, cluster_id, count(*) FROM r GROUP BY ALL ORDER BY 1").fetchall()
            if not rows:
                return _empty()
            quotas = _leaf_quotas([tuple(p) for p, _, _ in rows], [n for _, _, n in rows], size, seed)
            leaf = {tuple(p): c for p, c, _ in rows}
            con.register("quota", pa.table({"cluster_id": pa.array([leaf[p] for p in quotas], pa.int32()),
                                            "quota": list(quotas.values())}))
            query = """SELECT r.* FROM r JOIN quota USING (cluster_id)
                       QUALIFY row_number() OVER (PARTITION BY r.cluster_id ORDER BY draw) <= quota"""
        return con.sql(f"SELECT region_id, key, cluster_path, cluster_id FROM ({query}) ORDER BY region_id").to_arrow_table()
    finally:
        con.close()


def _empty() -> pa.Table:
    return pa.table({"region_id": pa.array([], pa.string()), "key": pa.array([], pa.string()),
                     "cluster_path": pa.array([], pa.list_(pa.int32())), "cluster_id": pa.array([], pa.int32())})


def write_sample(out: Output, to: Path | RemotePath, size: int, strategy: Strategy = "balanced", seed: int = 0) -> int:
    """Draw a sample (``sample_regions``) and write it to ``to`` (Parquet); return its row count.

    Args:
        out: a build's output folder or object-store prefix.
        to: the Parquet file to write (a local path or a URL).
        size: regions to draw.
        strategy: ``balanced`` or ``random``.
        seed: the sample's seed.
    """
    table = sample_regions(Output.of(out), size, strategy, seed)
    write_table(table, as_path(to))
    return table.num_rows
