"""RapidOCR across images: text detection batched over images of one exact size, recognition batched
over the line crops of all the images, with the same output as reading one image at a time.

RapidOCR 1.4.4 reads one image per call: the detector (DB-net) runs on one image, then the line
crops of that image are recognised in batches of ``rec_batch_num`` (6), each batch right-padded to
its widest crop. ``read_batch`` splits that call into its parts and regroups the two model calls:

``RapidOcr.read_many`` uses this on GPU providers only: on the CPU provider batches cost 5-15 %
more CPU per image than single calls (BENCHMARKS.md), so there it reads one image at a time.

- Detection: each image is resized exactly as RapidOCR does (sides rounded to multiples of 32), and
  images whose *resized* tensors have the same height and width run as one batch. No padding is
  added: DB-net is fully convolutional and a padded border changes the probability map near the
  image's edge (and so the boxes), so images of different sizes are not mixed. Web images resized by
  ``download`` share a handful of sizes, so buckets fill.
- Recognition: every crop keeps the padded width RapidOCR would have given it (the widest crop of
  its per-image batch); crops of all images that share a padded width run together, sorted by
  width. The recogniser's output row depends only on its own input row (checked on CPU: bitwise
  equal for batches of 1, 6 and 12), so the text, scores and character frames are unchanged.

The per-image steps (resize, letterbox, box post-processing, crop, angle classifier, mapping back
to image pixels) are RapidOCR's own methods, called in the same order. Tested equal to
``RapidOcr.__call__`` on the demo images and rendered text pages (tests/models/test_ocr_batch.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REC_ROWS = 32  # crops per recognition call (any number gives the same rows; bounds memory)


@dataclass
class _Page:
    """One image on its way through the parts of a RapidOCR call."""

    raw_h: int
    raw_w: int
    img: np.ndarray
    record: dict[str, Any]
    tensor: np.ndarray | None = None
    boxes: list[np.ndarray] | None = None
    crops: list[np.ndarray] = field(default_factory=list)
    rec: list[tuple] = field(default_factory=list)


def _detect(engine: Any, pages: list[_Page], batch: bool) -> None:
    """Text boxes of every page: one detector call per exact tensor size, or per page."""
    det = engine.text_det
    buckets: dict[tuple[int, ...], list[_Page]] = defaultdict(list)
    for i, p in enumerate(pages):
        p.tensor = det.get_preprocess(max(p.img.shape[0], p.img.shape[1]))(p.img)
        if p.tensor is not None:
            buckets[p.tensor.shape if batch else (i,)].append(p)
    for group in buckets.values():
        preds = det.infer(np.concatenate([p.tensor for p in group]))[0]
        for i, p in enumerate(group):
            shape = p.img.shape[0], p.img.shape[1]
            boxes, _ = det.postprocess_op(preds[i:i + 1], shape)
            boxes = det.filter_tag_det_res(boxes, shape)
            p.boxes = engine.sorted_boxes(boxes) if boxes is not None and len(boxes) else None
            p.tensor = None


def _recognise(engine: Any, pages: list[_Page]) -> None:
    """Recognise every crop of every page, batched by the padded width RapidOCR gives it."""
    rec = engine.text_rec
    _, img_h, img_w = rec.rec_image_shape[:3]
    by_width: dict[int, list[tuple[float, _Page, int, np.ndarray]]] = defaultdict(list)
    for p in pages:
        p.rec = [("", 0.0)] * len(p.crops)
        ratios = [c.shape[1] / float(c.shape[0]) for c in p.crops]
        order = np.argsort(np.array(ratios))  # RapidOCR's order and batches of rec_batch_num
        for beg in range(0, len(order), rec.rec_batch_num):
            chunk = order[beg:beg + rec.rec_batch_num]
            max_ratio = max([img_w / img_h] + [ratios[j] for j in chunk])
            for j in chunk:
                row = rec.resize_norm_img(p.crops[j], max_ratio)
                by_width[row.shape[2]].append((ratios[j], p, int(j), row))
    for width in sorted(by_width):
        items = sorted(by_width[width], key=lambda t: t[0])
        for beg in range(0, len(items), REC_ROWS):
            part = items[beg:beg + REC_ROWS]
            preds = rec.session(np.stack([t[3] for t in part]).astype(np.float32))[0]
            for (_, p, j, _), res in zip(part, rec.postprocess_op(preds, False)):
                p.rec[j] = res


def read_batch(engine: Any, images_bgr: list[np.ndarray], use_cls: bool, det_batch: bool = True) -> list[list[tuple]]:
    """RapidOCR's result rows ``(quad, text, score, CharTimes)`` for each BGR image, as its
    ``__call__`` (det + optional cls + rec, no word boxes) returns them one image at a time.

    Args:
        engine: a ``rapidocr_onnxruntime.RapidOCR`` whose detector post-processing options
            (``box_thresh``, ``unclip_ratio``) and ``text_score`` are already set.
        images_bgr: H x W x 3 uint8 BGR images.
        use_cls: run the angle classifier on each image's crops.
        det_batch: batch the detector over same-size images (off: one detector call per image).
    """
    pages = []
    for im in images_bgr:
        raw_h, raw_w = im.shape[:2]
        img, ratio_h, ratio_w = engine.preprocess(engine.load_img(im))
        img, record = engine.maybe_add_letterbox(img, {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}})
        pages.append(_Page(raw_h, raw_w, img, record))
    _detect(engine, pages, det_batch)
    for p in pages:
        if p.boxes is not None:
            p.crops = engine.get_crop_img_list(p.img, p.boxes)
            if use_cls:
                p.crops, _, _ = engine.text_cls(p.crops)
    _recognise(engine, [p for p in pages if p.boxes is not None])
    out: list[list[tuple]] = []
    for p in pages:
        if p.boxes is None:
            out.append([])
            continue
        boxes = engine._get_origin_points(p.boxes, p.record, p.raw_h, p.raw_w)
        kept, rec = engine.filter_result(list(boxes), p.rec)
        out.append([(box.tolist(), *r) for box, r in zip(kept or [], rec or [])])
    return out

