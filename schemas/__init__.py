"""Arrow schemas, table names and column names: the single source of truth for regionset's data."""

from regionset.schemas.tables import (
    DUPLICATES,
    EMBEDDINGS,
    HASHES,
    IMAGES,
    INPUT,
    LABELS,
    REGION_DUPLICATES,
    REGIONS,
    REGIONS_OBJECT,
    REGIONS_TEXT,
    SCHEMA_VERSION,
    TABLE_DIRS,
    TRAIN,
    duplicates_schema,
    embeddings_schema,
    hashes_schema,
    images_schema,
    input_schema,
    labels_schema,
    region_duplicates_schema,
    regions_schema,
    schema_for,
    train_schema,
)
from regionset.schemas.validate import SchemaError, check_shard, validate_table

__all__ = [
    "DUPLICATES", "HASHES", "REGION_DUPLICATES", "duplicates_schema", "hashes_schema", "region_duplicates_schema", "EMBEDDINGS", "IMAGES", "INPUT", "LABELS", "REGIONS", "REGIONS_OBJECT", "REGIONS_TEXT",
    "SCHEMA_VERSION", "TABLE_DIRS", "TRAIN", "SchemaError", "check_shard", "embeddings_schema", "images_schema",
    "input_schema", "labels_schema", "regions_schema", "schema_for", "train_schema", "validate_table",
]
