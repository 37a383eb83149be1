"""Batched RapidOCR (``models/ocr_batch.py``) equals one image at a time, exactly, on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.models.ocr import RapidOcr, _line
from regionset.models.ocr_batch import read_batch
from regionset.pipelines.tools.demo.corpus import demo_images
from regionset.stages.region_helpers import decode_rgb
from tests.synth import render_text_image, text_lines


def _images() -> list[np.ndarray]:
    """Demo photos and text pages (three pages share a size: one detection batch) and rendered
    pages of 16-40 px lines, one rotated; sizes differ so several detection buckets form."""
    demo = demo_images()
    picked = [d for d in demo if d.name.startswith("text-")][:3] + [d for d in demo if d.name in ("astronaut.jpg", "coffee.jpg")]
    ims = [decode_rgb(d.data) for d in picked]
    lines = text_lines(14, seed=11)
    ims.append(render_text_image(lines[:7], [16, 20, 24, 32, 40, 28, 18])[0])
    ims.append(render_text_image(lines[7:], [40, 32, 24, 20, 16, 22, 30], angle=3.0)[0])
    ims.append(np.full((400, 500, 3), 255, np.uint8))  # no text at all
    return ims


def _rows(lines) -> list[tuple]:
    return [(ln.quad.tobytes(), ln.text, ln.score, ln.times) for ln in lines]


@pytest.fixture(scope="module")
def rapid():
    return RapidOcr(threads=1)


def test_read_many_equals_one_image_at_a_time(rapid):
    images = _images()
    one = [_rows(rapid(im)) for im in images]
    assert sum(map(len, one)) > 20 and one[-1] == []
    e = rapid._engine  # rapid(im) above left its box_thresh, unclip_ratio and text_score set on it
    for det_batch in (True, False):  # as on a GPU provider; the detector one image per call
        rows = read_batch(e, [np.ascontiguousarray(im[:, :, ::-1]) for im in images], e.use_cls, det_batch)
        assert [_rows([_line(r) for r in per]) for per in rows] == one  # boxes, text, scores, frames: bit for bit


def test_read_batch_of_one_image_and_of_none(rapid):
    im = _images()[0]
    e = rapid._engine
    rapid(im)  # sets the detector options and text_score on the engine
    assert [_rows([_line(r) for r in per]) for per in read_batch(e, [im[:, :, ::-1].copy()], False)] == [_rows(rapid(im))]
    assert read_batch(e, [], False) == []
    assert [_rows(x) for x in rapid.read_many([im, im])] == [_rows(rapid(im))] * 2  # CPU: one at a time
