"""Synthetic embeddings / regions / images shards for the k-means, assign and pack tests.

Tables are written straight from ``schemas`` (no detector or embedder involved): a Gaussian mixture
gives embeddings with known cluster labels, region ids are ``r<global index>`` so the same region
keeps its id whatever shard it is written to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from regionset.pipelines.core.shards import shard_path, write_table
from regionset.schemas import EMBEDDINGS, IMAGES, REGIONS_OBJECT, REGIONS_TEXT
from regionset.schemas.tables import (
    SOURCE_OBJECT,
    SOURCE_TEXT,
    embeddings_schema,
    images_schema,
    regions_schema,
)


def gaussian_mixture(n: int, k: int = 50, d: int = 64, spread: float = 3.0, noise: float = 1.0,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 points around ``k`` random centres, and each point's true cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * spread
    labels = rng.integers(0, k, n)
    x = centres[labels] + rng.standard_normal((n, d)) * noise
    return x.astype(np.float32), labels


def key_of(i: int) -> str:
    """Image key of global region index ``i`` (4 regions per image)."""
    return f"img{i // 4:07d}"


def write_region_shard(out: Path, shard: int, idx: np.ndarray, x: np.ndarray,
                       texts: dict[int, str] | None = None, skip_embedding: set[int] | None = None) -> None:
    """Write regions/object, regions/text and embeddings shards for global indices ``idx``.

    Args:
        out: output folder.
        shard: shard id.
        idx: global region indices of the object regions (rows of ``x``).
        x: (len(idx), d) embeddings of those regions.
        texts: text regions to add: global index -> OCR text (no embedding).
        skip_embedding: object indices written without an embedding row.
    """
    texts = texts or {}
    skip = skip_embedding or set()

    def regions(ids: list[int], source: str, text: list[str | None]) -> pa.Table:
        n = len(ids)
        return pa.table({
            "region_id": [f"r{i}" for i in ids], "key": [key_of(i) for i in ids], "source": [source] * n,
            "x0": pa.array([1.0] * n, pa.float32()), "y0": pa.array([2.0] * n, pa.float32()),
            "x1": pa.array([30.0] * n, pa.float32()), "y1": pa.array([40.0] * n, pa.float32()),
            "score": pa.array([0.9] * n, pa.float32()), "class_name": [None] * n, "text": text,
            "text_raw": text, "proposer": ["fake"] * n,
        }, schema=regions_schema())

    obj = [int(i) for i in idx]
    write_table(regions(obj, SOURCE_OBJECT, [None] * len(obj)), shard_path(out, REGIONS_OBJECT, shard))
    tid = sorted(texts)
    write_table(regions(tid, SOURCE_TEXT, [texts[i] for i in tid]), shard_path(out, REGIONS_TEXT, shard))
    keep = [j for j, i in enumerate(obj) if i not in skip]
    d = x.shape[1]
    flat = pa.array(x[keep].astype(np.float16).ravel(), pa.float16())
    emb = pa.table({
        "region_id": [f"r{obj[j]}" for j in keep], "key": [key_of(obj[j]) for j in keep],
        "embedding": pa.FixedSizeListArray.from_arrays(flat, d), "model": ["fake"] * len(keep),
    }, schema=embeddings_schema(d))
    write_table(emb, shard_path(out, EMBEDDINGS, shard))


def write_image_shard(out: Path, shard: int, keys: list[str], failed: set[str] | None = None) -> None:
    """An images ledger shard: every key downloaded (tiny fake bytes) except those in ``failed``."""
    failed = failed or set()
    n = len(keys)
    ok = [k not in failed for k in keys]
    table = pa.table({
        "key": keys, "url": [f"http://x/{k}.jpg" for k in keys], "caption": [f"caption {k}" for k in keys],
        "status": ["success" if o else "failed_to_download" for o in ok],
        "error_message": [None if o else "boom" for o in ok],
        "width": pa.array([64] * n, pa.int32()), "height": pa.array([48] * n, pa.int32()),
        "original_width": pa.array([64] * n, pa.int32()), "original_height": pa.array([48] * n, pa.int32()),
        "sha256": [None] * n, "jpg": [f"JPEG{k}".encode() if o else None for k, o in zip(keys, ok)],
        "original": [None] * n,
    }, schema=images_schema())
    write_table(table, shard_path(out, IMAGES, shard))


def write_mixture(out: Path, shards: int, per_shard: int, d: int = 16, k: int = 20, seed: int = 0,
                  order: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write a Gaussian mixture spread over ``shards`` shards; return (x, true labels) by global index.

    Args:
        order: a permutation of the global indices deciding which shard each region lands in.
    """
    x, labels = gaussian_mixture(shards * per_shard, k=k, d=d, seed=seed)
    perm = np.arange(len(x)) if order is None else np.asarray(order)
    for s in range(shards):
        idx = np.sort(perm[s * per_shard:(s + 1) * per_shard])
        write_region_shard(out, s, idx, x[idx])
    return x, labels
