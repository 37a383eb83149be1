"""Grouping image hashes into duplicates, in DuckDB (hashes never pass through Python).

Rules, chosen so that adding shards never changes an earlier row (keys grow with the shard id):
- exact: images with the same pixel sha256 are duplicates of the smallest key among them;
- near: among the exact representatives, an image is a duplicate when an image with a *smaller* key
  is within ``threshold`` bits (candidate pairs come from the index ``scheme`` of ``candidates.py``:
  equal 16-bit bands or 32-bit halves within one bit; verified by ``bit_count(xor)``); it points
  at the smallest such key, and pointers are followed to the root, a kept image (single linkage over
  the key order);
- eval: any image within ``threshold`` of an evaluation image (one extra row, kind ``eval``).
Only images with ``key >= lo`` get rows: earlier ones are passed in as ``prior`` duplicates files.
"""

from __future__ import annotations

import duckdb

from regionset.pipelines.dedup.candidates import key_columns, match_sql
from regionset.schemas.tables import DUP_EVAL, DUP_EXACT, DUP_NEAR


def _files(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def find_duplicates(con: duckdb.DuckDBPyConnection, hash_files: list[str], lo: str, threshold: int,
                    bands: int = 4, prior_files: list[str] | None = None, eval_table: str | None = None,
                    scheme: str = "bands", halvings: int = 2) -> str:
    """Create the temp table ``dups`` (key, duplicate_of, kind, distance) for keys ``>= lo``.

    Args:
        con: a DuckDB connection (its memory limit and temp directory bound the grouping's memory).
        hash_files: every ``hashes`` shard file (key, pixel_sha256, phash).
        lo: the smallest key that gets rows ("" for all).
        threshold: Hamming threshold of near duplicates.
        bands: number of equal-width bands of the hash (``bands`` scheme; must divide 64).
        prior_files: ``duplicates`` files of the shards below ``lo`` (their near rows hold roots).
        eval_table: a table or view (src, phash) of evaluation images' hashes, or None.
        scheme: the candidate index, ``bands`` or ``halves`` (``candidates.py``).
        halvings: 1 or 2 ways of halving the hash (``halves`` scheme).

    Returns:
        The table's name, ``dups``.
    """
    if 64 % bands:
        raise ValueError(f"dedup.bands: {bands} does not divide 64")
    if halvings not in (1, 2):
        raise ValueError(f"dedup.halvings: {halvings} is not 1 or 2")
    lo_sql = "'" + lo.replace("'", "''") + "'"
    con.execute(f"CREATE OR REPLACE TEMP VIEW h AS SELECT key, pixel_sha256, phash FROM read_parquet({_files(hash_files)})")
    # one window pass over the pixel hashes; their 64-character strings are not kept after it
    con.execute("CREATE OR REPLACE TEMP TABLE firsts AS "
                "SELECT key, phash, min(key) OVER (PARTITION BY pixel_sha256) AS first FROM h")
    con.execute(f"CREATE OR REPLACE TEMP TABLE reps AS SELECT key, phash, {', '.join(key_columns(scheme, bands, halvings))} "
                "FROM firsts WHERE key = first")
    con.execute(f"CREATE OR REPLACE TEMP TABLE exact AS SELECT key, first AS duplicate_of FROM firsts "
                f"WHERE key <> first AND key >= {lo_sql}")
    con.execute("DROP TABLE firsts")
    # near: each new representative points at the smallest smaller-key representative within reach
    new_reps = f"(SELECT * FROM reps WHERE key >= {lo_sql})"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE ptr AS
        SELECT key, min(other) AS parent FROM ({match_sql(new_reps, 'reps', scheme, bands, threshold,
                                                           'AND b.key < a.key', halvings)}) GROUP BY key""")
    con.execute("CREATE OR REPLACE TEMP TABLE roots AS SELECT key, parent FROM ptr")
    if prior_files:
        con.execute(f"INSERT INTO roots SELECT key, duplicate_of FROM read_parquet({_files(prior_files)}) "
                    f"WHERE kind = '{DUP_NEAR}'")
    while True:  # pointer jumping: a parent that is itself a duplicate hands over its own parent
        changed = con.execute("SELECT count(*) FROM roots p JOIN roots q ON p.parent = q.key").fetchone()[0]
        if not changed:
            break
        con.execute("""CREATE OR REPLACE TEMP TABLE roots AS
            SELECT p.key, coalesce(q.parent, p.parent) AS parent FROM roots p LEFT JOIN roots q ON p.parent = q.key""")
    parts = [
        f"SELECT key, duplicate_of, '{DUP_EXACT}' AS kind, 0 AS distance FROM exact",
        f"""SELECT p.key, p.parent AS duplicate_of, '{DUP_NEAR}' AS kind,
                   bit_count(xor(a.phash, b.phash)) AS distance
            FROM roots p JOIN ptr USING (key) JOIN reps a ON a.key = p.key JOIN reps b ON b.key = p.parent""",
    ]
    if eval_table is not None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE ev AS SELECT src AS key, phash, {', '.join(key_columns(scheme, bands, halvings))} "
                    f"FROM {eval_table}")
        new = f"(SELECT key, phash, {', '.join(key_columns(scheme, bands, halvings))} FROM h WHERE key >= {lo_sql})"
        parts.append(f"""SELECT key, arg_min(other, distance) AS duplicate_of, '{DUP_EVAL}' AS kind,
                                min(distance) AS distance
                         FROM ({match_sql(new, 'ev', scheme, bands, threshold, halvings=halvings)}) GROUP BY key""")
    con.execute("CREATE OR REPLACE TEMP TABLE dups AS SELECT key, duplicate_of, kind, "
                f"CAST(distance AS INTEGER) AS distance FROM ({' UNION ALL '.join(parts)}) ORDER BY key, kind")
    return "dups"
