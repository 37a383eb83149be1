"""Catalog views: shards an older version wrote without newer columns read as NULL; every other table
is one plain ``read_parquet``, never ``union_by_name`` (which holds every file's footer at once)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from regionset.pipelines.core.catalog import build_catalog, connect
from regionset.schemas import images_schema, regions_schema
from regionset.schemas.validate import VERSION_KEY


def _write(path, table, version: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: version}), path)


def _regions(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def test_version_1_shards_are_united_by_name_and_other_tables_read_plainly(tmp_path):
    new = regions_schema()
    old = new.remove(new.get_field_index("text_raw"))
    _write(tmp_path / "regions/text/part-00000.parquet",
           _regions([{"region_id": "a", "key": "k0", "source": "text", "text": "old"}], old), b"1")
    _write(tmp_path / "regions/text/part-00001.parquet",
           _regions([{"region_id": "b", "key": "k1", "source": "text", "text": "new", "text_raw": "NEW"}], new), b"2")
    _write(tmp_path / "images/part-00000.parquet",
           pa.Table.from_pylist([{"key": "k0", "status": "success"}], schema=images_schema()), b"2")
    build_catalog(tmp_path)
    con = connect(tmp_path)
    try:
        rows = con.execute("SELECT region_id, text, text_raw FROM regions ORDER BY region_id").fetchall()
        assert rows == [("a", "old", None), ("b", "new", "NEW")]
        names = [r[0] for r in con.execute("DESCRIBE regions").fetchall()]
        assert names == new.names  # the current column order, whichever file came first
        views = dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())
        assert "UNION ALL BY NAME" in views["regions"]
        assert "union_by_name" not in views["regions"].lower()
        assert "UNION" not in views["images"] and "union_by_name" not in views["images"].lower()
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 1
    finally:
        con.close()
