"""Catalog tables and views of the labels: the cluster tree, cluster sizes, the OCR vocabulary.

Added to ``catalog.duckdb`` by ``build_catalog``:
- ``cluster_tree`` (level, id, parent): every centroid of ``OUT/kmeans``;
- ``clusters`` (level, id, parent, size, mean_distance): regions per cluster at every level from
  the ``labels`` table; ``mean_distance`` is the mean distance of its regions to their *leaf*
  centroid (at the leaf level: to the cluster's own centroid);
- ``cluster_size_histogram`` (level, size_from, clusters): clusters per power-of-two size bucket;
- ``regions_per_cluster_l0`` (cluster_id, regions, mean_distance): the top level, largest first;
- ``vocab_tokens`` (token_id, token) for the ids used, ``top_ocr_tokens`` (token_id, token,
  regions) and ``vocab`` (tokenizer, vocab_size, tokens_used, text_regions): OCR label summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import yaml

from regionset.common.files import load_npy
from regionset.models.kmeans_index import level_dir, read_meta
from regionset.pipelines.core.output import Output
from regionset.schemas.tables import KMEANS

_VIEWS = {
    "cluster_size_histogram": """
        SELECT level, CASE WHEN size = 0 THEN 0 ELSE CAST(pow(2, floor(log2(size))) AS BIGINT) END
               AS size_from, count(*) AS clusters
        FROM clusters GROUP BY ALL ORDER BY level, size_from""",
    "regions_per_cluster_l0": """
        SELECT id AS cluster_id, size AS regions, mean_distance
        FROM clusters WHERE level = 0 ORDER BY regions DESC, cluster_id""",
    "top_ocr_tokens": """
        SELECT t.token_id, v.token, count(*) AS regions
        FROM (SELECT unnest(token_ids) AS token_id FROM labels WHERE token_ids IS NOT NULL) t
        LEFT JOIN vocab_tokens v USING (token_id)
        WHERE t.token_id >= 0 GROUP BY ALL ORDER BY regions DESC, token_id""",
}


def _tree_table(out: Output) -> tuple[pa.Table, int]:
    root = out / KMEANS
    meta = read_meta(root)  # None until kmeans.json commits a tree (a folder or an object-store prefix)
    levels, ids, parents = [], [], []
    for level in range(len(meta["sizes"]) if meta else 0):
        p = load_npy(level_dir(root, level) / "parents.npy")
        levels.append(np.full(len(p), level, np.int32))
        ids.append(np.arange(len(p), dtype=np.int32))
        parents.append(p.astype(np.int32))
    table = pa.table({name: np.concatenate(xs) if xs else np.zeros(0, np.int32)
                      for name, xs in (("level", levels), ("id", ids), ("parent", parents))})
    return table, len(levels)


def _tokenizer_config(out: Output) -> Any:
    from regionset.common.typed_config import from_dict
    from regionset.models.tokenizer import TokenizerConfig

    try:
        doc = yaml.safe_load((out / "regionset.yaml").read_text()) or {}
        section = ((doc.get("config") or {}).get("assign") or {}).get("tokenizer") or {}
        return from_dict(TokenizerConfig, section)
    except (OSError, ValueError, AttributeError):
        return TokenizerConfig()


def _vocab(con: duckdb.DuckDBPyConnection, out: Output) -> tuple[pa.Table, dict[str, Any]]:
    used = [r[0] for r in con.execute(
        "SELECT DISTINCT unnest(token_ids) AS t FROM labels WHERE token_ids IS NOT NULL ORDER BY t").fetchall()]
    used = [t for t in used if t is not None and t >= 0]
    cfg = _tokenizer_config(out)
    summary = {"tokenizer": f"{cfg.name}:{cfg.hf_path}" if cfg.hf_path else cfg.name, "vocab_size": None,
               "tokens_used": len(used)}
    strings: list[str | None] = [None] * len(used)
    if used:
        try:
            from regionset.models.tokenizer import TokenLabeler

            labeler = TokenLabeler(cfg)
            summary["vocab_size"] = labeler.vocab_size
            strings = [labeler.token_string(t) for t in used]
        except (ImportError, OSError, ValueError):
            pass  # the ids stay; only their text is missing
    table = pa.table({"token_id": pa.array(used, pa.int32()), "token": pa.array(strings, pa.string())})
    return table, summary


def add_label_tables(con: duckdb.DuckDBPyConnection, out: Output) -> None:
    """Create the cluster and vocabulary tables and views (needs the ``labels`` view in ``con``).

    Args:
        con: an open connection to the catalog being built.
        out: the output folder.
    """
    cluster_tree, depth = _tree_table(out)  # noqa: F841 (read by DuckDB's replacement scan)
    con.execute("CREATE OR REPLACE TABLE cluster_tree AS SELECT * FROM cluster_tree")
    con.execute(f"""
        CREATE OR REPLACE TABLE clusters AS
        WITH m AS (
            SELECT g.level::INTEGER AS level, l.cluster_path[g.level + 1] AS id, l.distance
            FROM labels l, range(0, {depth}) g(level) WHERE l.cluster_path IS NOT NULL)
        SELECT t.level, t.id, t.parent, count(m.id) AS size, avg(m.distance) AS mean_distance
        FROM cluster_tree t LEFT JOIN m ON m.level = t.level AND m.id = t.id
        GROUP BY t.level, t.id, t.parent ORDER BY t.level, t.id""")
    vocab_tokens, summary = _vocab(con, out)  # noqa: F841
    con.execute("CREATE OR REPLACE TABLE vocab_tokens AS SELECT * FROM vocab_tokens")
    text_regions = con.execute("SELECT count(*) FROM labels WHERE token_ids IS NOT NULL").fetchone()[0]
    vocab = pa.table({  # noqa: F841
        "tokenizer": [summary["tokenizer"]], "vocab_size": pa.array([summary["vocab_size"]], pa.int64()),
        "tokens_used": [summary["tokens_used"]], "text_regions": [int(text_regions)]})
    con.execute("CREATE OR REPLACE TABLE vocab AS SELECT * FROM vocab")
    for name, sql in _VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")


def cluster_summary(catalog: Path) -> list[tuple]:
    """Per level: clusters, regions, empty clusters, min / median / max size (from the catalog).

    Args:
        catalog: the catalog file (``OUT/catalog.duckdb``, or the local catalog of an object store).
    """
    import duckdb as _duckdb

    con = _duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute("""
            SELECT level, count(*) AS clusters, sum(size) AS regions, count(*) FILTER (WHERE size = 0) AS empty,
                   min(size), median(size), max(size)
            FROM clusters GROUP BY level ORDER BY level""").fetchall()
    finally:
        con.close()
