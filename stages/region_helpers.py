"""What the region stages share: robust image decoding, RICE box filters, stable region ids, rows.

Per-row problems never raise: a ledger row that failed to download, has no bytes, does not decode
or is too small is a counted skip (``skip:<reason>``); a box that a filter removes is a counted
drop (``drop:<reason>``). Boxes are in pixels of the *stored* image; size filters that RICE states
in original-image pixels use the stored -> original scale from the ledger's width columns.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from regionset.common import threads
from regionset.schemas import regions_schema
from regionset.schemas.tables import STATUS_SUCCESS

# Box coordinates are rounded to this many pixels before hashing, so that float noise below a pixel
# does not change a region's id across re-runs.
BOX_QUANTUM = 1.0


class DecodedImage:
    """One decoded ledger row: the stored image as PIL (``pil``) and, on first use, as an H x W x 3
    uint8 array (``rgb``); ``scale_x``/``scale_y`` are original pixels per stored pixel."""

    def __init__(self, key: str, pil, scale_x: float, scale_y: float) -> None:
        self.key = key
        self.pil = pil
        self.scale_x = scale_x
        self.scale_y = scale_y
        self.width, self.height = pil.size

    @cached_property
    def rgb(self) -> np.ndarray:
        return np.asarray(self.pil)


def region_id(key: str, source: str, box: tuple[float, float, float, float], quantum: float = BOX_QUANTUM) -> str:
    """Stable id of a region: a hash of the image key, the source and the quantised box."""
    q = ",".join(str(int(round(v / quantum))) for v in box)
    return hashlib.sha1(f"{key}\x1f{source}\x1f{q}".encode()).hexdigest()[:20]


def decode_pil(data: bytes):
    """Decode image bytes to an RGB PIL image; raises on anything PIL cannot fully decode."""
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return im if im.mode == "RGB" else im.convert("RGB")


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode image bytes to RGB uint8 (H x W x 3); raises on anything PIL cannot fully decode."""
    return np.asarray(decode_pil(data))


def _decode_bytes(data: bytes | None):
    """The RGB PIL image of a downloaded row's bytes, or the skip reason."""
    if not data:
        return "no_image_bytes"
    try:
        return decode_pil(data)
    except Exception:  # noqa: BLE001 - any decoder failure is a counted skip
        return "corrupt_image"


def _decode_row(data: bytes | None, ow: int | None, oh: int | None, min_image_side: int, decoded=None):
    """(PIL image, scale_x, scale_y) or the skip reason of one ledger row that downloaded;
    ``decoded`` (the PIL image or skip reason of an earlier decode of these bytes) skips the decode."""
    pil = _decode_bytes(data) if decoded is None else decoded
    if isinstance(pil, str):
        return pil
    w, h = pil.size
    ow, oh = ow or w, oh or h
    if min(ow, oh) < min_image_side or min(w, h) < 2:
        return "image_too_small"
    return pil, ow / w, oh / h


def default_prefetch() -> int:
    """Decoder threads within the worker's thread budget: none (inline) on a 1-thread budget, 1 on
    small budgets (more only steals cores from the model), 1 per 4 threads up to 4."""
    budget = threads.current()
    return 0 if budget < 2 else max(1, min(4, budget // 4))


def iter_images(table: pa.Table, counters: Counter, min_image_side: int = 0,
                prefetch: int | None = None, lookahead: int = 0,
                memo: dict[str, Any] | None = None) -> Iterator[DecodedImage]:
    """Decode the usable rows of an ``images`` table, in order, counting each skipped row by reason.

    Args:
        table: an ``images`` shard (needs key, status, jpg, original_width, original_height).
        counters: where ``skip:<reason>`` and ``images:decoded`` are counted.
        min_image_side: rows whose shortest edge in original pixels is below this are skipped.
        prefetch: decoder threads working ahead of the consumer (0: decode inline; None: from the
            thread budget, ``default_prefetch``). JPEG decoding releases the GIL, so it overlaps with the stage's model.
        lookahead: images decoded ahead of the consumer (at least ``2 * prefetch``); a consumer
            that takes batches of n should ask for n, so the next batch decodes during this one.
        memo: key -> decoded image (or skip reason), shared by stages that read the same rows
            (the fused ``regions`` step): a row in it is not decoded again, and a row decoded here
            is added to it. The counters are those of a decode.
    """
    from concurrent.futures import ThreadPoolExecutor

    if prefetch is None:
        prefetch = default_prefetch()
    keys = table.column("key").to_pylist()
    status = table.column("status").to_pylist()
    ow = table.column("original_width").to_pylist()
    oh = table.column("original_height").to_pylist()
    jpg = table.column("jpg")
    todo = []
    for i, st in enumerate(status):
        if st != STATUS_SUCCESS:
            counters["skip:not_downloaded"] += 1
        else:
            todo.append(i)

    def decode(i: int):
        if memo is None:
            return _decode_row(jpg[i].as_py(), ow[i], oh[i], min_image_side)
        got = memo.get(keys[i])
        if got is None:
            got = memo[keys[i]] = _decode_bytes(jpg[i].as_py())
        return _decode_row(None, ow[i], oh[i], min_image_side, got)

    pool = ThreadPoolExecutor(prefetch, thread_name_prefix="decode") if prefetch > 0 and len(todo) > 1 else None
    try:
        pending: list = []
        ahead = max(2 * prefetch, lookahead)
        for n, i in enumerate(todo):
            if pool is None:
                result = decode(i)
            else:
                while len(pending) <= ahead and n + len(pending) < len(todo):
                    j = todo[n + len(pending)]
                    pending.append(pool.submit(decode, j))
                result = pending.pop(0).result()
            if isinstance(result, str):
                counters[f"skip:{result}"] += 1
                continue
            counters["images:decoded"] += 1
            yield DecodedImage(keys[i], *result)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def batched(items: Iterator, n: int) -> Iterator[list]:
    """Lists of up to ``n`` items."""
    batch: list = []
    for it in items:
        batch.append(it)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def filter_boxes(img: DecodedImage, boxes: np.ndarray, scores: np.ndarray, counters: Counter, *,
                 min_box_side: float = 0.0, max_box_area: float = 1.0, max_regions: int = 0) -> np.ndarray:
    """Apply the RICE box filters; return the kept indices, best score first, and count every drop.

    Args:
        img: the image the boxes belong to (stored pixels; its scale gives original pixels).
        boxes: N x 4 (x0, y0, x1, y1) in stored pixels; clipped to the image in place.
        scores: N scores, higher is better.
        counters: ``drop:<reason>`` counts.
        min_box_side: drop boxes whose shortest side, in original pixels, is below this.
        max_box_area: drop boxes covering more than this fraction of the image.
        max_regions: keep at most this many per image (0: no cap).
    """
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, img.width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, img.height)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    empty = (bw < 1) | (bh < 1)
    small = ~empty & (np.minimum(bw * img.scale_x, bh * img.scale_y) < min_box_side)
    large = ~empty & ~small & (bw * bh > max_box_area * img.width * img.height)
    for reason, mask in (("empty_box", empty), ("box_too_small", small), ("box_too_large", large)):
        if mask.any():
            counters[f"drop:{reason}"] += int(mask.sum())
    keep = np.flatnonzero(~(empty | small | large))
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    if max_regions and len(keep) > max_regions:
        counters["drop:over_max_regions"] += len(keep) - max_regions
        keep = keep[:max_regions]
    return keep


class RegionRows:
    """Accumulates ``regions`` rows and turns them into a table, de-duplicating ids per shard."""

    def __init__(self, source: str, proposer: str, counters: Counter) -> None:
        self.source = source
        self.proposer = proposer
        self.counters = counters
        self.cols: dict[str, list] = {f.name: [] for f in regions_schema()}
        self._seen: set[str] = set()

    def add(self, key: str, box: np.ndarray, score: float, class_name: str | None = None,
            text: str | None = None, text_raw: str | None = None) -> None:
        """Add one region (box in stored pixels); a second region with the same id is a counted drop."""
        x0, y0, x1, y1 = (float(v) for v in box)
        rid = region_id(key, self.source, (x0, y0, x1, y1))
        if rid in self._seen:
            self.counters["drop:duplicate"] += 1
            return
        self._seen.add(rid)
        for name, value in (("region_id", rid), ("key", key), ("source", self.source), ("x0", x0),
                            ("y0", y0), ("x1", x1), ("y1", y1), ("score", float(score)),
                            ("class_name", class_name), ("text", text), ("text_raw", text_raw),
                            ("proposer", self.proposer)):
            self.cols[name].append(value)
        self.counters[f"regions:{self.source}"] += 1

    def table(self) -> pa.Table:
        """The rows added so far as a ``regions`` table."""
        return pa.Table.from_pydict(self.cols, schema=regions_schema())


def files_fingerprint(*paths: str) -> str:
    """Size and mtime of the local model files among ``paths`` (non-files are ignored), for
    ``Stage.fingerprint``: replacing a weights file at the same path redoes the shards."""
    from pathlib import Path

    parts = []
    for p in paths:
        f = Path(p).expanduser() if p else None
        if f is not None and f.is_file():
            st = f.stat()
            parts.append(f"{f.resolve()}:{st.st_size}:{int(st.st_mtime)}")
    return ";".join(parts)
