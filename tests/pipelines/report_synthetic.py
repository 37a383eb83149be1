"""A small synthetic output folder with every table filled, for the report tests.

Images are real JPEGs with coloured rectangles; regions sit on those rectangles; labels put them in
a two-level cluster tree; text regions carry text and token ids. Written with the project's
schemas and shard writer, then catalogued with ``build_catalog``, like a real build.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml
from PIL import Image, ImageDraw

from regionset.pipelines.core.catalog import build_catalog
from regionset.pipelines.core.shards import Marker, shard_path, write_marker, write_table
from regionset.schemas import EMBEDDINGS, IMAGES, LABELS, REGIONS_OBJECT, REGIONS_TEXT, schema_for
from regionset.schemas.tables import SOURCE_OBJECT, SOURCE_TEXT

WARNING = "embedder: pretrained: none — embeddings are random features (synthetic test output)"
CLASSES = ("cat", "car", "sign", "<odd & 'quoted'>")


def _jpeg(rng: random.Random, w: int, h: int, boxes: list[tuple[int, int, int, int]]) -> bytes:
    img = Image.new("RGB", (w, h), (235, 235, 230))
    draw = ImageDraw.Draw(img)
    for b in boxes:
        draw.rectangle(b, fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build_synthetic(out: Path, shards: int = 2, per_shard: int = 6, seed: int = 0) -> Path:
    """Write a complete small output folder (images … labels, markers, lineage) and its catalog.

    Args:
        out: folder to create.
        shards: number of shards.
        per_shard: input rows per shard (the last of each shard is a failed download).
        seed: randomness of boxes and colours.
    """
    rng = random.Random(seed)
    out = Path(out)
    for s in range(shards):
        imgs, objs, texts, labels, embs = [], [], [], [], []
        for i in range(per_shard):
            key = f"{s:05d}{i:04d}"
            if i == per_shard - 1:
                imgs.append({"key": key, "url": f"http://x/{key}.jpg", "caption": "gone", "status": "failed_to_download",
                             "error_message": "HTTP Error 404: Not Found"})
                continue
            w, h = rng.choice([(320, 240), (240, 320), (300, 300)])
            n_obj, n_txt = rng.randint(0, 4), rng.randint(0, 2)
            boxes = []
            for _ in range(n_obj + n_txt):
                x0, y0 = rng.randrange(0, w - 60), rng.randrange(0, h - 40)
                boxes.append((x0, y0, x0 + rng.randrange(20, 60), y0 + rng.randrange(12, 40)))
            imgs.append({"key": key, "url": f"http://x/{key}.jpg", "caption": f"image <{key}> & co", "status": "success",
                         "width": w, "height": h, "original_width": w, "original_height": h,
                         "sha256": "0" * 64, "jpg": _jpeg(rng, w, h, boxes)})
            for j, b in enumerate(boxes):
                src = SOURCE_OBJECT if j < n_obj else SOURCE_TEXT
                rid = f"r{key}-{j}"
                row = {"region_id": rid, "key": key, "source": src, "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3],
                       "score": rng.uniform(0.5, 1.0), "proposer": "fake-proposer@1",
                       "class_name": rng.choice(CLASSES) if src == SOURCE_OBJECT else None,
                       "text": f"TEXT {j} <b>" if src == SOURCE_TEXT else None}
                (objs if src == SOURCE_OBJECT else texts).append(row)
                leaf = rng.randrange(6)
                labels.append({"region_id": rid, "key": key, "source": src, "cluster_path": [leaf // 3, leaf],
                               "cluster_id": leaf, "distance": rng.uniform(0, 1),
                               "token_ids": [rng.randrange(1000) for _ in range(rng.randint(1, 5))]
                               if src == SOURCE_TEXT else None})
                embs.append({"region_id": rid, "key": key, "embedding": np.ones(8, np.float16).tolist(),
                             "model": "fake-embedder"})
        for folder, rows in ((IMAGES, imgs), (REGIONS_OBJECT, objs), (REGIONS_TEXT, texts), (LABELS, labels)):
            write_table(pa.Table.from_pylist(rows, schema=schema_for(folder)), shard_path(out, folder, s))
        write_table(pa.Table.from_pylist(embs, schema=schema_for(EMBEDDINGS, 8)), shard_path(out, EMBEDDINGS, s))
        ok = sum(r["status"] == "success" for r in imgs)
        for stage, rows_out, counters in (
                ("download", len(imgs), {"status:success": ok, "status:failed_to_download": len(imgs) - ok,
                                         "error:HTTP Error Not Found": len(imgs) - ok}),
                ("detect", len(objs), {"regions": len(objs)}), ("ocr", len(texts), {"drop:low_score": 1})):
            write_marker(out, Marker(stage=stage, shard=s, config_hash="c", input_hash="i", output_sha256="0", rows_in=len(imgs),
                                     rows_out=rows_out, seconds=0.5, counters=counters))
    (out / "regionset.yaml").write_text(yaml.safe_dump({
        "regionset_lineage": 1, "written_at": "2026-11-26T00:00:00Z", "config_hash": "abc", "warnings": [WARNING],
        "models": {"detect": "yolo11n.yaml (random init)", "ocr": "PP-OCRv4 (rapidocr 1.4.4)"},
        "versions": {"python": "3.11"}, "config": {"output": str(out), "steps": ["download", "detect"]}}))
    build_catalog(out)
    return out
