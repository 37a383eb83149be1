"""dedup (per shard): hash every downloaded image — sha256 of its decoded pixels and a 64-bit pHash.

The global grouping (``pipelines/dedup/``) turns the ``hashes`` table into the ``duplicates`` table;
detect, ocr and embed then skip duplicate images (``skip:duplicate``) unless ``skip_duplicates`` is
off in their config. The pHash (``imagehash.phash``) is taken after trimming uniform borders (rows and
columns whose grey levels barely vary), so a bordered copy hashes like the original.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regionset.common.typed_config import ConfigError
from regionset.schemas import DUPLICATES, HASHES, IMAGES, hashes_schema
from regionset.schemas.tables import STATUS_SUCCESS
from regionset.stages.base import Resources, Stage


@dataclass(frozen=True)
class DedupConfig:
    """Image deduplication: hashing (the ``dedup`` stage) and grouping (``group_duplicates``).

    Args:
        threshold: largest Hamming distance of two 64-bit pHashes that makes them near duplicates.
        scheme: how candidate pairs are found (``pipelines/dedup/candidates.py``): ``bands`` (one of
            ``bands`` equal bands equal: every pair within ``bands - 1`` bits, most wider pairs, work
            quadratic in the number of images), ``halves`` (a 32-bit half within one bit: every pair
            within 3 bits, fewer wider pairs, work linear), or ``auto``: ``bands`` up to
            ``auto_limit`` images, ``halves`` above.
        bands: the hash is split into this many bands (``bands`` scheme).
        halvings: ways of cutting the hash into two 32-bit halves (``halves`` scheme): 1 (high and
            low bits) or 2 (also bits 16-47 and the rest: twice the work, more wide pairs found).
        auto_limit: the most images for which ``auto`` uses ``bands``.
        border_tol: a row or column whose grey-level standard deviation is below this is a border.
        against: evaluation images (local paths, folders, or URLs): images within ``threshold`` of
            one are flagged ``eval`` and never reach ``train/``.
        memory_limit: DuckDB memory limit of the grouping (it spills to ``OUT/_tmp`` beyond it).
    """

    threshold: int = 8
    scheme: Literal["auto", "bands", "halves"] = "auto"
    bands: int = 4
    halvings: int = 2
    auto_limit: int = 1_000_000
    border_tol: float = 3.0
    against: tuple[str, ...] = ()
    memory_limit: str = "2GB"
    resources: Resources = Resources()

    def check(self) -> None:
        """Raise ConfigError naming the key for a setting that cannot work."""
        if self.bands < 1 or 64 % self.bands:
            raise ConfigError(f"dedup.bands: {self.bands} must divide 64 (1, 2, 4, 8, 16, 32 or 64)")
        if self.halvings not in (1, 2):
            raise ConfigError(f"dedup.halvings: {self.halvings} must be 1 or 2")


def trim_borders(rgb: np.ndarray, tol: float) -> np.ndarray:
    """``rgb`` without its uniform outer rows and columns (unchanged if that would remove half of it)."""
    grey = rgb.astype(np.float32).mean(-1)

    def run(flags: np.ndarray) -> int:
        bad = np.flatnonzero(~flags)
        return int(bad[0]) if len(bad) else len(flags)

    rows, cols = grey.std(1) < tol, grey.std(0) < tol
    t, b, left, r = run(rows), run(rows[::-1]), run(cols), run(cols[::-1])
    h, w = grey.shape
    if t + b >= h // 2 or left + r >= w // 2:
        return rgb
    return rgb[t:h - b, left:w - r]


def image_hashes(data: bytes, border_tol: float = 3.0) -> tuple[str, int]:
    """(sha256 of the decoded RGB pixels and size, signed 64-bit pHash) of encoded image bytes.

    Args:
        data: encoded image bytes (JPEG, PNG, ...).
        border_tol: see ``DedupConfig.border_tol``.
    """
    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"))
    h = hashlib.sha256(f"{rgb.shape[1]}x{rgb.shape[0]}:".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    bits = imagehash.phash(Image.fromarray(trim_borders(rgb, border_tol))).hash.ravel()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return h.hexdigest(), value - (1 << 64) if value >= 1 << 63 else value


class DedupStage(Stage):
    """Hash one shard's downloaded images into the ``hashes`` table."""

    name = "dedup"
    inputs = (IMAGES,)
    output = HASHES
    table = HASHES

    def __init__(self, config: DedupConfig = DedupConfig()) -> None:
        super().__init__(config)

    def config_hash(self, out: Path) -> str:
        # Only the hashing settings decide this stage's output; threshold and `against` are grouping's.
        payload = f"{self.name}:{self.version}:border_tol={self.config.border_tol}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def process(self, table: pa.Table) -> pa.Table:
        ok = pc.fill_null(pc.and_kleene(pc.equal(table.column("status"), STATUS_SUCCESS),
                                        table.column("jpg").is_valid()), False)
        rows = table.filter(ok)
        if table.num_rows - rows.num_rows:
            self.counters["skip:not_downloaded"] += table.num_rows - rows.num_rows
        keys, shas, pixels, phashes = [], [], [], []
        for key, sha, jpg in zip(rows.column("key").to_pylist(), rows.column("sha256").to_pylist(),
                                 rows.column("jpg").to_pylist()):
            try:
                pix, ph = image_hashes(jpg, self.config.border_tol)
            except Exception:  # noqa: BLE001 - an undecodable image is a counted skip, never a crash
                self.counters["skip:undecodable"] += 1
                continue
            keys.append(key)
            shas.append(sha)
            pixels.append(pix)
            phashes.append(ph)
        self.counters["images:hashed"] += len(keys)
        return pa.table([keys, shas, pixels, pa.array(phashes, pa.int64())], schema=hashes_schema())


def skip_duplicates(images: pa.Table, tables: dict[str, pa.Table], enabled: bool, counters: Counter) -> pa.Table:
    """``images`` without the rows the shard's ``duplicates`` table lists, counted ``skip:duplicate``.

    Args:
        images: a table with a ``key`` column.
        tables: the shard's input tables; ``duplicates`` is there when the grouping has run.
        enabled: the stage's ``skip_duplicates`` switch (off: ``images`` unchanged).
        counters: the stage's counters.
    """
    dups = tables.get(DUPLICATES)
    if not enabled or dups is None or dups.num_rows == 0:
        return images
    is_dup = pc.fill_null(pc.is_in(images.column("key"), value_set=dups.column("key").combine_chunks()), False)
    n = int(pc.sum(is_dup).as_py() or 0)
    if n:
        counters["skip:duplicate"] += n
    return images.filter(pc.invert(is_dup))
