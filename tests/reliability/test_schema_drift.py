"""A shard written by another schema version (or with a drifted column) is reported, not mixed in."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.shards import read_table
from schemas import SchemaError, images_schema
from schemas.validate import VERSION_KEY


def _shard(tmp_path, table):
    path = tmp_path / "part-00000.parquet"
    pq.write_table(table, path)
    return path


def test_older_schema_version_is_reported(tmp_path):
    t = images_schema().empty_table().replace_schema_metadata({VERSION_KEY: b"0"})
    with pytest.raises(SchemaError, match=r"part-00000.parquet: written with regionset schema version 0"):
        read_table(_shard(tmp_path, t), "images")


def test_drifted_column_is_reported(tmp_path):
    t = images_schema().empty_table()
    t = t.set_column(t.schema.get_field_index("width"), "width", pa.array([], pa.int64()))
    with pytest.raises(SchemaError, match=r"part-00000.parquet: table 'images': column 'width' has type int64"):
        read_table(_shard(tmp_path, t), "images")
