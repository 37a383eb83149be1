"""Arrow schemas of every regionset table (README "Output layout", docs/architecture.md).

A table is a folder of ``part-NNNNN.parquet`` shards under the output folder. ``TABLE_DIRS`` maps a
table name to the folder(s) holding its shards; regions are written by two stages (object and text
proposals) into two sub-folders and read back as one table.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2

# Nullable columns added after version 1: {version: {table: (column, ...)}}. A shard written by an
# older version that only lacks these is read with them filled with nulls (``regionset.schemas.check_shard``).
ADDED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {"images": ("original",), "regions": ("text_raw",)},
}

INPUT = "input"
IMAGES = "images"
REGIONS = "regions"
REGIONS_OBJECT = "regions/object"
REGIONS_TEXT = "regions/text"
EMBEDDINGS = "embeddings"
LABELS = "labels"
TRAIN = "train"
KMEANS = "kmeans"  # the fitted cluster tree (centroids per level + kmeans.json), not a table
HASHES = "hashes"
DUPLICATES = "duplicates"
REGION_DUPLICATES = "region_duplicates"

# table name -> shard folders (relative to the output folder), used by the catalog and readers.
TABLE_DIRS: dict[str, tuple[str, ...]] = {
    INPUT: (INPUT,),
    IMAGES: (IMAGES,),
    REGIONS: (REGIONS_OBJECT, REGIONS_TEXT),
    EMBEDDINGS: (EMBEDDINGS,),
    LABELS: (LABELS,),
    TRAIN: (TRAIN,),
    HASHES: (HASHES,),
    DUPLICATES: (DUPLICATES,),
    REGION_DUPLICATES: (REGION_DUPLICATES,),
}

SOURCE_OBJECT = "object"
SOURCE_TEXT = "text"

# Ledger statuses of the images table.
STATUS_SUCCESS = "success"
STATUS_FAILED = "failed_to_download"
STATUS_RESIZE_FAILED = "failed_to_resize"
STATUS_REFUSED = "refused"

# Kinds of the duplicates table: same decoded pixels, perceptual-hash neighbour, evaluation image.
DUP_EXACT = "exact"
DUP_NEAR = "near"
DUP_EVAL = "eval"


def input_schema() -> pa.Schema:
    """The sharded URL list the download stage reads: one row per input URL, in input order."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
    ])


def images_schema() -> pa.Schema:
    """The ledger: every input URL exactly once, with the image bytes when the download worked."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_message", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("jpg", pa.binary()),
        # the downloaded bytes, kept only with download.keep_original and when the image was resized
        pa.field("original", pa.binary()),
    ])


def regions_schema() -> pa.Schema:
    """One row per region; boxes are in pixels of the stored image.

    ``text`` is the OCR text after space restoration, ``text_raw`` what the recogniser emitted.
    """
    return pa.schema([
        pa.field("region_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("x0", pa.float32()),
        pa.field("y0", pa.float32()),
        pa.field("x1", pa.float32()),
        pa.field("y1", pa.float32()),
        pa.field("score", pa.float32()),
        pa.field("class_name", pa.string()),
        pa.field("text", pa.string()),
        pa.field("text_raw", pa.string()),
        pa.field("proposer", pa.string()),
    ])


def embeddings_schema(dim: int) -> pa.Schema:
    """Region embeddings: L2-normalised fp16 vectors of a fixed width ``dim``."""
    return pa.schema([
        pa.field("region_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float16(), dim)),
        pa.field("model", pa.string()),
    ])


def labels_schema() -> pa.Schema:
    """Training labels: cluster path (one id per level, the last is the global leaf id) or tokens."""
    return pa.schema([
        pa.field("region_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("cluster_path", pa.list_(pa.int32())),
        pa.field("cluster_id", pa.int32()),
        pa.field("distance", pa.float32()),
        pa.field("token_ids", pa.list_(pa.int32())),
    ])


TRAIN_REGION = pa.struct([
    pa.field("region_id", pa.string()),
    pa.field("box", pa.list_(pa.float32(), 4)),
    pa.field("source", pa.string()),
    pa.field("class_id", pa.int32()),
    pa.field("token_ids", pa.list_(pa.int32())),
])


def train_schema() -> pa.Schema:
    """Denormalised, training-ready rows: one per image with at least one labelled region."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("jpg", pa.binary()),
        pa.field("caption", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("regions", pa.list_(TRAIN_REGION)),
    ])


def hashes_schema() -> pa.Schema:
    """Per-image hashes of downloaded images (the dedup stage): bytes and pixel sha256, 64-bit pHash."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),
        pa.field("pixel_sha256", pa.string(), nullable=False),
        pa.field("phash", pa.int64(), nullable=False),
    ])


def duplicates_schema() -> pa.Schema:
    """One row per image that is a duplicate: of a kept image (``exact``/``near``, the smallest key of
    its group) or of an evaluation image (``eval``: ``duplicate_of`` names the image's path or URL).
    ``distance`` is the Hamming distance of the 64-bit pHashes (0 for exact)."""
    return pa.schema([
        pa.field("key", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("distance", pa.int32()),
    ])


def region_duplicates_schema() -> pa.Schema:
    """Semantic region duplicates: within a leaf cluster, a region whose embedding cosine to an
    already kept region (same cluster, kept in order of distance to the centroid) is >= the threshold."""
    return pa.schema([
        pa.field("region_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("cluster_id", pa.int32(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("cosine", pa.float32()),
    ])


_SCHEMAS = {
    INPUT: input_schema,
    IMAGES: images_schema,
    REGIONS: regions_schema,
    LABELS: labels_schema,
    TRAIN: train_schema,
    HASHES: hashes_schema,
    DUPLICATES: duplicates_schema,
    REGION_DUPLICATES: region_duplicates_schema,
}


def schema_for(table: str, embedding_dim: int | None = None) -> pa.Schema:
    """Return the schema of ``table`` (a name or a shard folder such as ``regions/text``)."""
    name = table.split("/")[0]
    if name == EMBEDDINGS:
        if embedding_dim is None:
            raise ValueError("schema_for('embeddings') needs embedding_dim")
        return embeddings_schema(embedding_dim)
    if name not in _SCHEMAS:
        raise KeyError(f"unknown table {table!r}; known: {sorted([*_SCHEMAS, EMBEDDINGS])}")
    return _SCHEMAS[name]()
