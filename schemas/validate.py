"""Check a table against its schema, with errors that name the table, the column and both types."""

from __future__ import annotations

import pyarrow as pa


class SchemaError(ValueError):
    """A table does not match the schema it is meant to have."""


def validate_table(table: pa.Table, expected: pa.Schema, name: str, allow_extra: bool = False) -> None:
    """Raise SchemaError unless ``table`` has exactly the columns and types of ``expected``.

    Args:
        table: the table to check.
        expected: the schema from ``regionset.schemas.tables``.
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


VERSION_KEY = b"regionset.schema_version"


def _upgrade(table: pa.Table, expected: pa.Schema, added: set[str]) -> pa.Table:
    """``table`` with the missing columns of ``added`` filled with nulls, in ``expected``'s order."""
    cols = []
    for f in expected:
        if table.schema.get_field_index(f.name) >= 0:
            cols.append(table.column(f.name))
        elif f.name in added:
            cols.append(pa.nulls(table.num_rows, f.type))
        else:
            return table  # not an upgrade: validate_table names the missing column
    return pa.Table.from_arrays(cols, schema=expected.with_metadata(table.schema.metadata))


def check_shard(table: pa.Table, folder: str, source: str) -> pa.Table:
    """Detect schema drift in a shard read back from disk (e.g. written by an older regionset).

    A shard of an older schema version that only lacks columns added since (``ADDED_COLUMNS``)
    is upgraded: those columns are filled with nulls. Anything else is drift.

    Args:
        table: the shard as read.
        folder: its table folder (``images``, ``regions/text``, ...).
        source: the file, for the message.

    Returns:
        The shard, upgraded to the current schema where needed.

    Raises:
        SchemaError: naming the file, and the version or column that differs.
    """
    from regionset.schemas.tables import ADDED_COLUMNS, EMBEDDINGS, SCHEMA_VERSION, schema_for

    meta = table.schema.metadata or {}
    version = meta.get(VERSION_KEY)
    name = folder.split("/")[0]
    if version is not None and min(ADDED_COLUMNS) - 1 <= int(version) < SCHEMA_VERSION:
        added = {c for v, tables in ADDED_COLUMNS.items() if v > int(version) for c in tables.get(name, ())}
        if added:
            table = _upgrade(table, schema_for(folder), added)
    elif version is not None and int(version) != SCHEMA_VERSION:
        raise SchemaError(
            f"{source}: written with regionset schema version {int(version)}, this version reads "
            f"{SCHEMA_VERSION}; rebuild that table (delete its folder and _state markers) or use a new output folder")
    dim = None
    if folder.split("/")[0] == EMBEDDINGS:
        idx = table.schema.get_field_index("embedding")
        dim = getattr(table.schema.field(idx).type, "list_size", None) if idx >= 0 else None
        if not dim:
            raise SchemaError(f"{source}: table 'embeddings': column 'embedding' is not a fixed-size list")
    try:
        validate_table(table, schema_for(folder, dim), folder)
    except SchemaError as err:
        raise SchemaError(f"{source}: {err} (schema drift: written by another regionset version?)") from None
    return table
