"""Running the report's SQL: results kept with their statement and timing, literals, sampling."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

SAMPLE_ROWS = 200_000  # histograms of bigger tables are binned over a system sample of about this many rows


@dataclass
class Result:
    """One executed query: its SQL, column names and rows."""

    title: str
    sql: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    seconds: float = 0.0


def run(con: duckdb.DuckDBPyConnection, title: str, sql: str) -> Result:
    """Execute ``sql`` and keep it with its rows (every page shows the SQL it ran).

    Args:
        con: an open catalog connection.
        title: what the query is for, shown above the SQL.
        sql: the statement.
    """
    started = time.perf_counter()
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description] if cur.description else []
    rows = cur.fetchall()
    return Result(title, sql.strip(), cols, rows, time.perf_counter() - started)


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


def sample_clause(rows: int, seed: int, target: int = SAMPLE_ROWS) -> str:
    """``TABLESAMPLE p% (system, seed)`` keeping about ``target`` of ``rows`` rows; empty when small.

    DuckDB pushes a system sample into the Parquet scan (whole vectors are skipped), so a sampled
    histogram costs about the same at any table size.

    Args:
        rows: rows in the table.
        seed: sampling seed (the same seed gives the same sample).
        target: rows wanted.
    """
    if rows <= target:
        return ""
    return f" TABLESAMPLE {max(0.001, round(100 * target / rows, 3))}% (system, {int(seed)})"
