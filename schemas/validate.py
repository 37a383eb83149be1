"""Check a table against its schema, with errors that name the table, the column and both types."""

from __future__ import annotations

import pyarrow as pa


class SchemaError(ValueError):
    """A table does not match the schema it is meant to have."""


def validate_table(table: pa.Table, expected: pa.Schema, name: str, allow_extra: bool = False) -> None:
    """Raise SchemaError unless ``table`` has exactly the columns and types of ``expected``.

    Args:
        table: the table to check.
        expected: the schema from ``schemas.tables``.
        name: the table's name, used in the message.
        allow_extra: accept columns that the schema does not name.
    """
    actual = table.schema
    for field in expected:
        idx = actual.get_field_index(field.name)
        if idx < 0:
            raise SchemaError(f"table {name!r}: missing column {field.name!r} (expected {field.type})")
        got = actual.field(idx).type
        if not got.equals(field.type):
            raise SchemaError(
                f"table {name!r}: column {field.name!r} has type {got}, expected {field.type}"
            )
        if not field.nullable and table.column(idx).null_count:
            raise SchemaError(f"table {name!r}: column {field.name!r} has nulls but is not nullable")
    if not allow_extra:
        extra = [n for n in actual.names if expected.get_field_index(n) < 0]
        if extra:
            raise SchemaError(f"table {name!r}: unexpected column(s) {extra}")
