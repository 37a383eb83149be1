"""Schema validation errors name the table, the column and both types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from regionset.schemas import SchemaError, embeddings_schema, images_schema, schema_for, validate_table


def test_valid_empty_tables():
    for name in ("images", "regions", "labels", "train", "input"):
        validate_table(schema_for(name).empty_table(), schema_for(name), name)
    validate_table(embeddings_schema(8).empty_table(), schema_for("embeddings", 8), "embeddings")


def test_wrong_type_names_table_column_types():
    t = images_schema().empty_table().set_column(5, "width", pa.array([], pa.int64()))
    with pytest.raises(SchemaError, match=r"'images'.*'width'.*int64.*int32"):
        validate_table(t, images_schema(), "images")


def test_missing_and_extra_columns():
    t = images_schema().empty_table()
    with pytest.raises(SchemaError, match="missing column 'jpg'"):
        validate_table(t.drop(["jpg"]), images_schema(), "images")
    with pytest.raises(SchemaError, match="unexpected"):
        validate_table(t.append_column("zzz", pa.array([], pa.int8())), images_schema(), "images")
