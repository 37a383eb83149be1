"""A shard written by another schema version (or with a drifted column) is reported, not mixed in."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.core.shards import read_table
from regionset.schemas import SchemaError, images_schema
from regionset.schemas.validate import VERSION_KEY


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


def test_version_1_shard_without_new_columns_is_upgraded(tmp_path):
    from regionset.schemas import regions_schema

    old = regions_schema().remove(regions_schema().get_field_index("text_raw"))
    t = pa.Table.from_pylist([{"region_id": "r", "key": "k", "source": "text", "text": "a b"}], schema=old)
    t = t.replace_schema_metadata({VERSION_KEY: b"1"})
    got = read_table(_shard(tmp_path, t), "regions/text")
    assert got.schema.names == regions_schema().names
    assert got.column("text_raw").to_pylist() == [None] and got.column("text").to_pylist() == ["a b"]


def test_version_1_shard_missing_an_old_column_is_still_drift(tmp_path):
    from regionset.schemas import regions_schema

    t = regions_schema().empty_table().drop_columns(["text_raw", "score"])
    t = t.replace_schema_metadata({VERSION_KEY: b"1"})
    with pytest.raises(SchemaError, match=r"missing column 'score'"):
        read_table(_shard(tmp_path, t), "regions/text")
