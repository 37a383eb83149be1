"""``catalog.duckdb``: views over every table's Parquet shards, plus ``runs`` and ``stage_state``.

The catalog is built into a temp file and renamed into place, so a build never holds the live file
open for writing and readers (``duckdb OUT/catalog.duckdb``) are never locked out. Views use
absolute paths so the file answers from any working directory; after moving an output folder, run
``regionset catalog OUT`` to re-point them.

For an object-store output (``s3://bucket/prefix``) the catalog is built into a local file (``--to
FILE``, by default a file named after the URL in ``REGIONSET_CATALOG_DIR`` or
``~/.cache/regionset/catalogs``) and, by default, uploaded to ``OUT/catalog.duckdb`` on the store
(``catalog_store.py``): ``connect`` on any host downloads the store's copy into its cache when it
changed. Its views read the remote Parquet through the fsspec filesystem registered on each
connection (DuckDB's httpfs extension is not bundled with the wheel and cannot be downloaded offline).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import duckdb
import pyarrow as pa

from regionset.common.shard_names import shard_name
from regionset.common.storage import RemotePath, is_remote
from regionset.pipelines.core.catalog_store import fetch, publish
from regionset.pipelines.core.failpoints import failpoint
from regionset.pipelines.core.fence import check_commit
from regionset.pipelines.core.labels import add_label_tables
from regionset.pipelines.core.output import CATALOG_FILE, Output
from regionset.pipelines.core.shards import STATE_DIR, list_shards
from regionset.schemas import EMBEDDINGS, TABLE_DIRS, schema_for
from regionset.schemas.tables import ADDED_COLUMNS

# tables whose older shards may lack columns added since (read as NULL)
_EVOLVED = {name for tables in ADDED_COLUMNS.values() for name in tables}

# semantic region duplicates counted per leaf cluster (regions: the cluster's labelled regions)
_REGION_DUPS_PER_CLUSTER = """CREATE OR REPLACE VIEW region_duplicates_per_cluster AS
    SELECT l.cluster_id, count(*) AS regions, count(d.region_id) AS duplicates
    FROM labels l LEFT JOIN region_duplicates d USING (region_id)
    WHERE l.cluster_id IS NOT NULL GROUP BY ALL ORDER BY duplicates DESC, l.cluster_id"""


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def catalog_file(out: Output) -> Path:
    """Where the catalog of ``out`` lives: ``OUT/catalog.duckdb``, or a local cache file for a URL.

    Args:
        out: the output folder or prefix.
    """
    if not is_remote(out):
        return Path(out) / CATALOG_FILE
    base = Path(os.environ.get("REGIONSET_CATALOG_DIR") or Path.home() / ".cache" / "regionset" / "catalogs")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", str(out)).strip("-")[:80]
    return base / f"{slug}-{hashlib.sha256(str(out).encode()).hexdigest()[:8]}.duckdb"


def register_storage(con: duckdb.DuckDBPyConnection, out: Output) -> None:
    """Let ``con`` read ``out``'s remote Parquet (fsspec registration); nothing for local folders.

    Args:
        con: a DuckDB connection.
        out: the output folder or prefix.
    """
    if is_remote(out):
        con.register_filesystem(Output.of(out).fs)


def committed_files(out: RemotePath, folder: str) -> list[str]:
    """The shard objects of an object-store table folder that carry their stage's completion marker.

    The marker is the commit there: objects a killed writer left are not in the catalog (the next
    build deletes them). One listing of the folder and one of its stage's markers; a global step's
    folder (``duplicates``, ...) counts only while its completion file exists.

    Args:
        out: the output prefix.
        folder: a table folder.
    """
    from regionset.pipelines.core.outputs import (  # the stage classes: only when asked
        global_outputs,
        stage_outputs,
    )

    commit = global_outputs().get(folder)
    if commit is not None and not (out / commit).exists():
        return []
    shards = list_shards(out, folder)
    stage = stage_outputs().get(folder)
    if stage is not None:
        marked = {p.name.replace(".json", ".parquet") for p in (out / STATE_DIR / stage).iterdir()}
        shards = [s for s in shards if shard_name(s) in marked]
    return [str(out / folder / shard_name(s)) for s in shards]


def _read(files: list[str]) -> str:
    return "SELECT * FROM read_parquet([" + ", ".join(_sql_str(f) for f in files) + "])"


def _schema_groups(con: duckdb.DuckDBPyConnection, globs: list[str]) -> list[list[str]]:
    """The files of ``globs`` grouped by their Parquet schema, the widest schema first.

    DuckDB's ``parquet_schema`` reads one footer at a time, so this stays small however many
    files there are (``union_by_name`` would hold every file's footer at once)."""
    files = "[" + ", ".join(_sql_str(g) for g in globs) + "]"
    rows = con.execute(f"""
        SELECT file_name, string_agg(name || ':' || coalesce(type, '') || ':' || coalesce(num_children, 0), ','
                                     ORDER BY name, type) AS sig, count(*) AS n
        FROM parquet_schema({files}) GROUP BY file_name""").fetchall()
    groups: dict[str, tuple[int, list[str]]] = {}
    for file, sig, n in sorted(rows):
        groups.setdefault(sig, (n, []))[1].append(file)
    return [fs for _, fs in sorted(groups.values(), key=lambda g: (-g[0], g[1][0]))]


def _table_view(con: duckdb.DuckDBPyConnection, out: Output, name: str) -> int:
    """A view over the table's shards (an empty table when it has none); returns the number of globs.

    Shards of one table share one schema, except that an older regionset wrote some tables without
    the columns ``ADDED_COLUMNS`` lists: only those tables are grouped by file schema and the groups
    united by name (missing columns read as NULL). Every other table is one plain ``read_parquet``,
    whose memory does not grow with the number of files or row groups."""
    if is_remote(out):
        globs = [f for d in TABLE_DIRS[name] for f in committed_files(out, d)]
    else:
        globs = [str((out / d).resolve() / "part-*.parquet") for d in TABLE_DIRS[name] if list_shards(out, d)]
    if globs:
        groups = _schema_groups(con, globs) if name in _EVOLVED else [globs]
        sql = _read(globs) if len(groups) == 1 else " UNION ALL BY NAME ".join(_read(g) for g in groups)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        return len(globs)
    if name == EMBEDDINGS:
        schema = pa.schema([("region_id", pa.string()), ("key", pa.string()),
                            ("embedding", pa.list_(pa.float32())), ("model", pa.string())])
    else:
        schema = schema_for(name)
    empty = schema.empty_table()  # noqa: F841 (read by DuckDB's replacement scan)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM empty")
    return 0


def _marker_docs(out: Output) -> Iterator[dict]:
    state = out / STATE_DIR
    if is_remote(out):  # each stage's marker index: one listing, a GET only for what it does not vouch for
        for stage in sorted({p.name for p in state.iterdir()} - {"runs", "build.lock"}):
            index = out.markers(stage).committed()
            yield from (asdict(m) for s in sorted(index.marked()) if (m := index.get(s)) is not None)
        return
    for stage_dir in sorted(p for p in state.glob("*") if p.is_dir() and p.name != "runs"):
        for f in sorted(stage_dir.glob("part-*.json")):
            try:
                yield json.loads(f.read_text())
            except (OSError, ValueError):
                continue


def _markers(out: Output) -> pa.Table:
    rows = [{
        "stage": m["stage"], "shard": m["shard"], "rows_in": m["rows_in"], "rows_out": m["rows_out"],
        "seconds": float(m["seconds"]), "config_hash": m["config_hash"],
        "input_hash": m["input_hash"], "finished_at": float(m["finished_at"]),
        "counters": json.dumps(m.get("counters", {}), sort_keys=True),
    } for m in _marker_docs(out)]
    schema = pa.schema([("stage", pa.string()), ("shard", pa.int64()), ("rows_in", pa.int64()),
                        ("rows_out", pa.int64()), ("seconds", pa.float64()), ("config_hash", pa.string()),
                        ("input_hash", pa.string()), ("finished_at", pa.float64()), ("counters", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def _runs(out: Output) -> pa.Table:
    rows = []
    for f in sorted((out / STATE_DIR / "runs").glob("*.json")):
        try:
            rows.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    schema = pa.schema([("run_id", pa.string()), ("started_at", pa.float64()), ("finished_at", pa.float64()),
                        ("status", pa.string()), ("config_hash", pa.string()), ("executor", pa.string()),
                        ("argv", pa.string()), ("pid", pa.int64()), ("shards", pa.int64())])
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def build_catalog(out: Output, to: Path | None = None) -> Path:
    """(Re)build the catalog of ``out`` atomically and return its path.

    Args:
        out: the output folder or prefix.
        to: the catalog file (default ``catalog_file(out)``, then for a remote output uploaded to
            ``OUT/catalog.duckdb`` on the store; a file given here is not uploaded).
    """
    out = Output.of(out)
    final = Path(to) if to is not None else catalog_file(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    # The oldest storage format that holds views and small tables: any DuckDB CLI >= 1.0 opens the
    # catalog, even one older than the duckdb wheel that wrote it (``duckdb-cli`` lags the wheel).
    con = duckdb.connect(str(tmp), config={"storage_compatibility_version": "v1.0.0"})
    try:
        register_storage(con, out)
        for name in TABLE_DIRS:
            _table_view(con, out, name)
        add_label_tables(con, out)
        con.execute(_REGION_DUPS_PER_CLUSTER)
        stage_state = _markers(out)  # noqa: F841
        runs = _runs(out)  # noqa: F841
        con.execute("CREATE TABLE stage_state AS SELECT * FROM stage_state")
        con.execute("CREATE TABLE runs AS SELECT * FROM runs")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    failpoint("catalog")
    check_commit(out.root)  # the catalog is a commit of the build that holds the lock (if one is armed)
    os.replace(tmp, final)
    if is_remote(out) and to is None:
        publish(out, final)  # kept on the store beside the tables: read by ``connect`` on any host
    return final


def connect(out: Output, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog of an output folder or prefix (a URL's catalog is rebuilt if missing)."""
    path = catalog_file(out)
    if is_remote(out) and not fetch(Output.of(out), path) and not path.exists():
        build_catalog(out, path)  # no catalog on the store (an older build): a local one, not uploaded
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `regionset build` (or `regionset catalog OUT`)")
    con = duckdb.connect(str(path), read_only=read_only)
    register_storage(con, out)
    return con
