"""Synthetic, learnable ``train`` shards: coloured shapes and striped "text" with known labels.

Used by tests, the tiny config's smoke run and the benchmark when no pipeline output is at hand.
An object region is a filled shape whose class is ``shape * len(COLOURS) + colour`` (12 classes);
a text region is a white box with ``k`` dark bars whose token ids are ``{k, 10 + k}`` (k in 1..4),
so both the single-label and the multi-label branches of the RICE loss have something to learn.
Rows follow ``regionset.schemas.tables.train_schema`` exactly, as the pipeline's pack stage writes them.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from regionset.common.shard_names import shard_name
from regionset.schemas.tables import SOURCE_OBJECT, SOURCE_TEXT, TRAIN, train_schema

COLOURS = ((220, 40, 40), (40, 180, 60), (50, 80, 230), (230, 200, 40))
SHAPES = ("square", "circle", "triangle")
NUM_CLASSES = len(SHAPES) * len(COLOURS)
NUM_TOKENS = 16


def _draw_object(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], shape: int, colour: int) -> None:
    fill = COLOURS[colour]
    x0, y0, x1, y1 = box
    if SHAPES[shape] == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif SHAPES[shape] == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)


def _draw_text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], bars: int) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(245, 245, 245))
    step = (y1 - y0) / (2 * bars + 1)
    for b in range(bars):
        top = y0 + step * (2 * b + 1)
        draw.rectangle((x0 + 2, top, x1 - 3, max(top, top + step - 1)), fill=(20, 20, 20))


def _free_box(rng: np.random.Generator, taken: list, size: int, lo: int, hi: int) -> tuple | None:
    for _ in range(20):
        s = int(rng.integers(lo, hi + 1))
        x0, y0 = (int(v) for v in rng.integers(0, size - s + 1, size=2))
        box = (x0, y0, x0 + s, y0 + s)
        if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in taken):
            return box
    return None


def synthetic_row(key: str, rng: np.random.Generator, size: int = 64, max_regions: int = 4,
                  text_prob: float = 0.3) -> dict:
    """One train row: a noisy grey image with 1..max_regions labelled, non-overlapping regions.

    Args:
        key: the row key.
        rng: randomness source.
        size: image side in pixels (the stored image; training letterboxes it).
        max_regions: most regions per image.
        text_prob: chance that a region is a striped text region instead of a shape.
    """
    base = rng.integers(90, 160, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    regions, taken = [], []
    for _ in range(int(rng.integers(1, max_regions + 1))):
        box = _free_box(rng, taken, size, size // 4, size // 2)
        if box is None:
            break
        taken.append(box)
        rid = f"{key}-{len(regions)}"
        if rng.random() < text_prob:
            bars = int(rng.integers(1, 5))
            _draw_text(draw, box, bars)
            regions.append({"region_id": rid, "box": [float(v) for v in box], "source": SOURCE_TEXT,
                            "class_id": -1, "token_ids": [bars, 10 + bars]})
        else:
            shape, colour = int(rng.integers(len(SHAPES))), int(rng.integers(len(COLOURS)))
            _draw_object(draw, box, shape, colour)
            regions.append({"region_id": rid, "box": [float(v) for v in box], "source": SOURCE_OBJECT,
                            "class_id": shape * len(COLOURS) + colour, "token_ids": []})
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return {"key": key, "jpg": buf.getvalue(), "caption": f"synthetic {key}", "width": size, "height": size,
            "regions": regions}


def write_synthetic_shards(out_dir: str, num_shards: int = 2, rows_per_shard: int = 64, size: int = 64,
                           seed: int = 0, text_prob: float = 0.3) -> list[str]:
    """Write ``OUT/train/part-NNNNN.parquet`` shards of :func:`synthetic_row` rows.

    Args:
        out_dir: the output folder (shards go to its ``train`` sub-folder).
        num_shards: number of shards.
        rows_per_shard: rows per shard.
        size: image side in pixels.
        seed: randomness seed (the same seed writes the same bytes).
        text_prob: chance that a region is a text region.

    Returns:
        The shard paths.
    """
    folder = os.path.join(out_dir, TRAIN)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for s in range(num_shards):
        rng = np.random.default_rng([seed, s])
        rows = [synthetic_row(f"{s:05d}{i:04d}", rng, size=size, text_prob=text_prob) for i in range(rows_per_shard)]
        path = os.path.join(folder, shard_name(s))
        pq.write_table(pa.Table.from_pylist(rows, schema=train_schema()), path + ".tmp")
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths
