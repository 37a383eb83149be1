"""Every SQL statement behind the report, run on ``OUT/catalog.duckdb``.

Each function returns the literal SQL (parameters inlined, so a user can paste it into
``regionset sql OUT "..."``). Aggregates are binned in DuckDB and only the bins come back; samples
are chosen in SQL (``ORDER BY hash(...) LIMIT n``) and image bytes are read only for the keys
shown, which the Parquet reader prunes by row-group statistics on ``key``. Histograms of tables
larger than ``sql.SAMPLE_ROWS`` take a ``{sample}`` clause (:func:`regionset.pipelines.tools.report.sql.sample_clause`).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from regionset.pipelines.tools.report.sql import existing_tables, in_list, sql_str
from regionset.schemas.tables import EMBEDDINGS, IMAGES, LABELS, REGIONS, SOURCE_TEXT, STATUS_SUCCESS, TRAIN

CLUSTERS = "clusters"  # written by the catalog step from kmeans/ when k-means has run
COUNTED_TABLES = (IMAGES, REGIONS, EMBEDDINGS, LABELS, TRAIN, CLUSTERS, "runs", "stage_state")


# --- overview ---------------------------------------------------------------------------------

def count_rows(table: str) -> str:
    """Rows of one table (Parquet views answer from file metadata)."""
    return f"SELECT count(*) AS n FROM {table}"


IMAGES_BY_STATUS = f"""
SELECT status, count(*) AS images FROM {IMAGES} GROUP BY status ORDER BY images DESC, status"""

REGIONS_BY_SOURCE = f"""
SELECT source, count(*) AS regions, approx_count_distinct(key) AS images_approx,
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

def _sampled(template: str, sample: str) -> str:
    return template.replace("{sample}", sample)


def regions_per_image(sample: str) -> str:
    """Regions per downloaded image (capped at 100) over an images sample."""
    return _sampled(f"""
WITH i AS (SELECT key FROM {IMAGES}{{sample}} WHERE status = {sql_str(STATUS_SUCCESS)}),
p AS (SELECT key, count(*) AS n FROM {REGIONS} WHERE key IN (SELECT key FROM i) GROUP BY key)
SELECT least(coalesce(p.n, 0), 100) AS regions, count(*) AS images
FROM i LEFT JOIN p USING (key) GROUP BY ALL ORDER BY regions""", sample)


def region_side_bins(sample: str) -> str:
    """Regions per source and quarter-octave bin of sqrt(area) in stored pixels."""
    return _sampled(f"""
SELECT source, floor(log2(greatest(sqrt((x1 - x0) * (y1 - y0)), 1)) * 4) / 4 AS log2_side,
       count(*) AS regions
FROM {REGIONS}{{sample}} WHERE x1 > x0 AND y1 > y0
GROUP BY ALL ORDER BY source, log2_side""", sample)


def region_aspect_bins(sample: str) -> str:
    """Regions per source and quarter-octave bin of width / height (clipped to 1:32 … 32:1)."""
    return _sampled(f"""
SELECT source, greatest(least(round(log2((x1 - x0) / (y1 - y0)) * 4) / 4, 5), -5) AS log2_aspect,
       count(*) AS regions
FROM {REGIONS}{{sample}} WHERE x1 > x0 AND y1 > y0
GROUP BY ALL ORDER BY source, log2_aspect""", sample)


def ocr_score_bins(sample: str) -> str:
    """Text regions per 0.05-wide confidence bin."""
    return _sampled(f"""
SELECT least(floor(score * 20) / 20, 0.95) AS score, count(*) AS regions
FROM {REGIONS}{{sample}} WHERE source = {sql_str(SOURCE_TEXT)} AND score IS NOT NULL
GROUP BY ALL ORDER BY score""", sample)


def tokens_per_text_region(sample: str) -> str:
    """Text regions per number of label tokens."""
    return _sampled(f"""
SELECT len(token_ids) AS tokens, count(*) AS regions
FROM {LABELS}{{sample}} WHERE source = {sql_str(SOURCE_TEXT)} AND token_ids IS NOT NULL
GROUP BY ALL ORDER BY tokens""", sample)


def top_tokens(sample: str, with_vocab: bool) -> str:
    """The 20 most frequent OCR label tokens (with their text when ``vocab_tokens`` exists)."""
    join = "LEFT JOIN vocab_tokens AS v USING (token_id)" if with_vocab else ""
    token = "v.token" if with_vocab else "NULL AS token"
    return _sampled(f"""
SELECT t.token_id, {token}, count(*) AS regions
FROM (SELECT unnest(token_ids) AS token_id FROM {LABELS}{{sample}} WHERE token_ids IS NOT NULL) AS t {join}
WHERE t.token_id >= 0 GROUP BY ALL ORDER BY regions DESC, t.token_id LIMIT 20""", sample)


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
    """The ``k`` regions closest to the centroid of each cluster (from ``labels`` only)."""
    return f"""
SELECT cluster_id, cluster_path, distance, region_id, key FROM {LABELS}
WHERE cluster_id IN {in_list([int(c) for c in cluster_ids])}
QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY distance, region_id) <= {int(k)}
ORDER BY cluster_id, distance, region_id"""


def region_boxes(keys: Sequence[str], region_ids: Sequence[str]) -> str:
    """Boxes, source and text of the given regions (``key`` lets the reader skip row groups)."""
    return f"""
SELECT region_id, source, x0, y0, x1, y1, score, class_name, text FROM {REGIONS}
WHERE key IN {in_list(sorted(set(keys)))} AND region_id IN {in_list(list(region_ids))}"""


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
