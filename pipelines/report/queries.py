"""Every SQL statement behind the report, run on ``OUT/catalog.duckdb``.

Each function returns the literal SQL (parameters inlined, so a user can paste it into
``regionset sql OUT "..."``). Aggregates are binned in DuckDB and only the bins come back; samples
are chosen in SQL (``ORDER BY hash(...) LIMIT n``) and image bytes are read only for the keys
shown, which the Parquet reader prunes by row-group statistics on ``key``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from schemas.tables import EMBEDDINGS, IMAGES, LABELS, REGIONS, SOURCE_TEXT, STATUS_SUCCESS, TRAIN

CLUSTERS = "clusters"  # written by the catalog step from kmeans/ when k-means has run
COUNTED_TABLES = (IMAGES, REGIONS, EMBEDDINGS, LABELS, TRAIN, CLUSTERS, "runs", "stage_state")


@dataclass
class Result:
    """One executed query: its SQL, column names and rows."""

    title: str
    sql: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def run(con: duckdb.DuckDBPyConnection, title: str, sql: str) -> Result:
    """Execute ``sql`` and keep it with its rows (every page shows the SQL it ran).

    Args:
        con: an open catalog connection.
        title: what the query is for, shown above the SQL.
        sql: the statement.
    """
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description] if cur.description else []
    return Result(title, sql.strip(), cols, cur.fetchall())


def sql_str(s: str) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def in_list(values: Sequence[Any]) -> str:
    """``(v1, v2, ...)`` for an IN clause; strings quoted, ints as is; ``(NULL)`` when empty."""
    if not values:
        return "(NULL)"
    return "(" + ", ".join(str(int(v)) if isinstance(v, int) else sql_str(v) for v in values) + ")"


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views in the catalog."""
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


# --- overview ---------------------------------------------------------------------------------

def count_rows(table: str) -> str:
    """Rows of one table (Parquet views answer from file metadata)."""
    return f"SELECT count(*) AS n FROM {table}"


IMAGES_BY_STATUS = f"""
SELECT status, count(*) AS images FROM {IMAGES} GROUP BY status ORDER BY images DESC, status"""

REGIONS_BY_SOURCE = f"""
SELECT source, count(*) AS regions, count(DISTINCT key) AS images,
       round(avg(score), 3) AS mean_score
FROM {REGIONS} GROUP BY source ORDER BY source"""

FAILURE_REASONS = f"""
SELECT status, coalesce(error_message, '') AS reason, count(*) AS images
FROM {IMAGES} WHERE status <> {sql_str(STATUS_SUCCESS)}
GROUP BY ALL ORDER BY images DESC, status, reason LIMIT 25"""

STAGE_COUNTERS = """
SELECT stage, c.key AS counter, sum(c.value::BIGINT) AS n
FROM stage_state, json_each(counters) AS c
GROUP BY ALL ORDER BY stage, n DESC, counter"""

STAGE_TIMINGS = """
SELECT stage, count(*) AS shards, sum(rows_in) AS rows_in, sum(rows_out) AS rows_out,
       round(sum(seconds), 2) AS seconds,
       round(sum(rows_in) / nullif(sum(seconds), 0), 1) AS rows_in_per_s
FROM stage_state GROUP BY stage ORDER BY min(finished_at)"""

RECENT_RUNS = """
SELECT run_id, status, executor, shards, round(finished_at - started_at, 1) AS seconds
FROM runs ORDER BY started_at DESC LIMIT 10"""

TOP_OCR_TOKENS = "SELECT * FROM top_ocr_tokens LIMIT 20"
VOCAB = "SELECT * FROM vocab"
CLUSTER_LEVELS = f"""
SELECT level, count(*) AS clusters, sum(size) AS regions, min(size) AS min_size, max(size) AS max_size
FROM {CLUSTERS} GROUP BY level ORDER BY level"""


# --- distributions (binned in SQL) ------------------------------------------------------------

LEAF_SIZES_FROM_CLUSTERS = f"""SELECT id AS cluster_id, size, mean_distance FROM {CLUSTERS}
               WHERE level = (SELECT max(level) FROM {CLUSTERS}) AND size > 0"""
LEAF_SIZES_FROM_LABELS = f"""SELECT cluster_id, count(*) AS size, avg(distance) AS mean_distance FROM {LABELS}
               WHERE cluster_id IS NOT NULL GROUP BY cluster_id"""


def leaf_sizes(con: duckdb.DuckDBPyConnection) -> str:
    """SQL of (cluster_id, size, mean_distance) per non-empty leaf cluster.

    Read from the catalog's materialised ``clusters`` table when it has leaf rows (no scan of
    ``labels``), else aggregated from ``labels`` (outputs catalogued before k-means ran).

    Args:
        con: an open catalog connection.
    """
    if CLUSTERS in existing_tables(con):
        try:
            if con.execute(f"SELECT count(*) FROM ({LEAF_SIZES_FROM_CLUSTERS})").fetchone()[0] > 0:
                return LEAF_SIZES_FROM_CLUSTERS
        except duckdb.Error:
            pass  # a clusters table of another shape
    return LEAF_SIZES_FROM_LABELS


def cluster_size_bins(sizes_sql: str) -> str:
    """Leaf clusters per power-of-two size bin, from a :func:`leaf_sizes` query."""
    return f"""
WITH sizes AS ({sizes_sql})
SELECT floor(log2(size))::INTEGER AS log2_size, count(*) AS clusters,
       min(size) AS min_size, max(size) AS max_size
FROM sizes GROUP BY log2_size ORDER BY log2_size"""

REGIONS_PER_IMAGE = f"""
WITH per_image AS (SELECT key, count(*) AS n FROM {REGIONS} GROUP BY key)
SELECT least(coalesce(p.n, 0), 100) AS regions, count(*) AS images
FROM {IMAGES} AS i LEFT JOIN per_image AS p USING (key)
WHERE i.status = {sql_str(STATUS_SUCCESS)}
GROUP BY ALL ORDER BY regions"""

REGION_SIDE_BINS = f"""
SELECT source, floor(log2(greatest(sqrt((x1 - x0) * (y1 - y0)), 1)) * 4) / 4 AS log2_side,
       count(*) AS regions
FROM {REGIONS} WHERE x1 > x0 AND y1 > y0
GROUP BY ALL ORDER BY source, log2_side"""

REGION_ASPECT_BINS = f"""
SELECT source, greatest(least(round(log2((x1 - x0) / (y1 - y0)) * 4) / 4, 5), -5) AS log2_aspect,
       count(*) AS regions
FROM {REGIONS} WHERE x1 > x0 AND y1 > y0
GROUP BY ALL ORDER BY source, log2_aspect"""

OCR_SCORE_BINS = f"""
SELECT least(floor(score * 20) / 20, 0.95) AS score, count(*) AS regions
FROM {REGIONS} WHERE source = {sql_str(SOURCE_TEXT)} AND score IS NOT NULL
GROUP BY ALL ORDER BY score"""

TOKENS_PER_TEXT_REGION = f"""
SELECT len(token_ids) AS tokens, count(*) AS regions
FROM {LABELS} WHERE source = {sql_str(SOURCE_TEXT)} AND token_ids IS NOT NULL
GROUP BY ALL ORDER BY tokens"""


# --- cluster gallery --------------------------------------------------------------------------

def picked_clusters(n: int, seed: int, sizes_sql: str = LEAF_SIZES_FROM_LABELS) -> str:
    """The ``n`` largest, ``n`` smallest and ``n`` random other leaf clusters with their sizes.

    Args:
        n: clusters per group.
        seed: seed of the random group.
        sizes_sql: a :func:`leaf_sizes` query.
    """
    return f"""
WITH sizes AS ({sizes_sql}),
largest AS (SELECT 'largest' AS pick, * FROM sizes ORDER BY size DESC, cluster_id LIMIT {int(n)}),
smallest AS (SELECT 'smallest' AS pick, * FROM sizes
             WHERE cluster_id NOT IN (SELECT cluster_id FROM largest)
             ORDER BY size, cluster_id LIMIT {int(n)}),
random AS (SELECT 'random' AS pick, * FROM sizes
           WHERE cluster_id NOT IN (SELECT cluster_id FROM largest UNION ALL SELECT cluster_id FROM smallest)
           ORDER BY hash(cluster_id, {int(seed)}) LIMIT {int(n)})
SELECT * FROM largest UNION ALL SELECT * FROM smallest UNION ALL SELECT * FROM random"""


def cluster_members(cluster_ids: Sequence[int], k: int) -> str:
    """The ``k`` regions closest to the centroid of each cluster, with their boxes and text."""
    return f"""
WITH m AS (SELECT region_id, key, cluster_id, cluster_path, distance FROM {LABELS}
           WHERE cluster_id IN {in_list([int(c) for c in cluster_ids])}
           QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY distance, region_id) <= {int(k)})
SELECT m.cluster_id, m.cluster_path, m.distance, m.region_id, m.key, r.source,
       r.x0, r.y0, r.x1, r.y1, r.score, r.class_name, r.text
FROM m JOIN {REGIONS} AS r USING (region_id)
ORDER BY m.cluster_id, m.distance, m.region_id"""


# --- image pages ------------------------------------------------------------------------------

def sampled_images(n: int, seed: int) -> str:
    """A deterministic random sample of ``n`` downloaded images (only narrow columns)."""
    return f"""
SELECT key, url, caption, width, height FROM {IMAGES}
WHERE status = {sql_str(STATUS_SUCCESS)}
ORDER BY hash(key, {int(seed)}) LIMIT {int(n)}"""


def image_bytes(keys: Sequence[str]) -> str:
    """Stored JPEG bytes of the given keys only."""
    return f"SELECT key, jpg FROM {IMAGES} WHERE key IN {in_list(list(keys))}"


def image_regions(keys: Sequence[str]) -> str:
    """Regions of the given images with their cluster label when assigned."""
    keys_sql = in_list(list(keys))
    return f"""
SELECT r.key, r.region_id, r.source, r.x0, r.y0, r.x1, r.y1, r.score, r.class_name, r.text,
       l.cluster_id, l.cluster_path
FROM {REGIONS} AS r
LEFT JOIN (SELECT region_id, cluster_id, cluster_path FROM {LABELS} WHERE key IN {keys_sql}) AS l
  USING (region_id)
WHERE r.key IN {keys_sql}
ORDER BY r.key, r.source, r.score DESC NULLS LAST, r.region_id"""
