"""OCR backends: RapidOCR reads rendered text; the paddleocr backend fails fast and speaks its protocol."""

from __future__ import annotations

import sys
import textwrap
import time

import numpy as np
import pytest

from regionset.models.ocr import PaddleOcr, RapidOcr
from regionset.models.registry import ModelUnavailable
from tests.synth import render_text_image, text_lines


def _pages():
    """(expected lines, image): two pages of 16-40 px lines, a page rotated 4 degrees, a line at 8 degrees."""
    lines = text_lines(26, seed=7)
    sizes = [16, 20, 24, 32, 40] * 2
    pages = [(lines[:10], render_text_image(lines[:10], sizes)[0]),
             (lines[10:20], render_text_image(lines[10:20], sizes[::-1])[0])]
    pages.append((lines[20:25], render_text_image(lines[20:25], [22, 26, 30, 26, 22], angle=4.0)[0]))
    pages.append((lines[25:26], render_text_image(lines[25:26], [36], width=700, angle=8.0)[0]))
    return pages


@pytest.fixture(scope="module")
def rapid():
    return RapidOcr()


def test_rapidocr_reads_rendered_text(rapid):
    exact = loose = total = 0
    misses = []
    for expected, image in _pages():
        got = [line.text for line in rapid(image)]
        for want in expected:
            total += 1
            exact += want in got
            loose += want.replace(" ", "") in [g.replace(" ", "") for g in got]
            if want not in got:
                misses.append((want, got))
    for want, got in misses:
        print(f"OCR miss: wanted {want!r}; read {got}")
    print(f"OCR exact {exact}/{total}, ignoring spaces {loose}/{total}")
    assert exact / total >= 0.85, misses
    assert loose / total >= 0.9, misses


def test_rapidocr_boxes_and_scores(rapid):
    lines = text_lines(3, seed=3)
    image, boxes = render_text_image(lines, [24, 32, 40])
    read = rapid(image)
    assert len(read) == 3
    for line, (x0, y0, x1, y1) in zip(sorted(read, key=lambda ln: ln.quad[:, 1].min()), boxes):
        assert line.quad.shape == (4, 2) and 0.7 < line.score <= 1.0
        lo, hi = line.quad.min(0), line.quad.max(0)
        assert lo[0] <= x0 + 4 and lo[1] <= y0 + 4 and hi[0] >= x1 - 4 and hi[1] >= y1 - 4


def test_rapidocr_blank_image_reads_nothing(rapid):
    assert rapid(np.full((400, 400, 3), 255, np.uint8)) == []


def test_paddleocr_without_model_dirs_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match="ocr.paddleocr.det_model_dir"):
        PaddleOcr()
    assert time.monotonic() - t0 < 1.0


def test_paddleocr_missing_package_fails_fast(tmp_path):
    (tmp_path / "det").mkdir()
    (tmp_path / "rec").mkdir()
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match="paddleocr is not importable|paddleocr.python"):
        PaddleOcr(python=sys.executable, det_model_dir=str(tmp_path / "det"), rec_model_dir=str(tmp_path / "rec"),
                  start_timeout=30)
    assert time.monotonic() - t0 < 30


FAKE_PADDLE = '''
__version__ = "2.9.9"
class PaddleOCR:
    def __init__(self, det_model_dir, rec_model_dir, **kw):
        import os
        assert os.path.isdir(det_model_dir) and os.path.isdir(rec_model_dir)
        print("noisy library log on stdout")
    def ocr(self, path, cls=False):
        return [[[[[10, 20], [110, 20], [110, 50], [10, 50]], ("hello world", 0.93)]]]
'''


def test_paddleocr_worker_protocol_with_fake_package(tmp_path, monkeypatch):
    """A fake ``paddleocr`` on the worker's path: the subprocess protocol, logs on stdout and all."""
    pkg = tmp_path / "site" / "paddleocr"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_PADDLE))
    (tmp_path / "det").mkdir()
    (tmp_path / "rec").mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    ocr = PaddleOcr(det_model_dir=str(tmp_path / "det"), rec_model_dir=str(tmp_path / "rec"), start_timeout=30)
    try:
        assert ocr.model_id.startswith("paddleocr-2.9.9:")
        (line,) = ocr(np.zeros((60, 200, 3), np.uint8))
        assert line.text == "hello world" and line.score == pytest.approx(0.93)
        assert line.quad.tolist() == [[10, 20], [110, 20], [110, 50], [10, 50]]
    finally:
        ocr.close()


def test_paddleocr_hanging_worker_is_killed(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "paddleocr"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import time\nclass PaddleOCR:\n    def __init__(self, **kw):\n        time.sleep(60)\n")
    (tmp_path / "det").mkdir()
    (tmp_path / "rec").mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match="did not answer"):
        PaddleOcr(det_model_dir=str(tmp_path / "det"), rec_model_dir=str(tmp_path / "rec"), start_timeout=3)
    assert time.monotonic() - t0 < 15


def _merged_page():
    """Lines where PP-OCRv4 drops spaces: 26-46 px DejaVu lines, downscaled by 0.6 (as stored)."""
    from PIL import Image

    lines = text_lines(6, seed=11)
    image, _ = render_text_image(lines, [26, 30, 34, 38, 42, 46])
    small = Image.fromarray(image).resize((int(image.shape[1] * 0.6), int(image.shape[0] * 0.6)),
                                          Image.Resampling.LANCZOS)
    return lines, np.asarray(small)


def test_spacing_decoder_gives_rapidocrs_own_text(rapid):
    from rapidocr_onnxruntime import RapidOCR

    lines, image = _merged_page()
    stock = RapidOCR(det_limit_type="max", det_limit_side_len=960, use_cls=False, print_verbose=False)
    res, _ = stock(np.ascontiguousarray(image[:, :, ::-1]), box_thresh=0.5, unclip_ratio=2.0, text_score=0.0)
    ours = rapid(image)
    assert [t for _, t, _ in res] == [ln.text for ln in ours]
    assert [s for _, _, s in res] == pytest.approx([ln.score for ln in ours])
    assert all(len(ln.times.frames) == len(ln.text) for ln in ours)


def test_gaps_restore_the_words_that_recognition_merged(rapid):
    from regionset.models.ocr_spaces import restore_spaces

    lines, image = _merged_page()
    read = sorted(rapid(image), key=lambda ln: ln.quad[:, 1].min())
    raw = [ln.text for ln in read]
    restored = [restore_spaces(ln.text, ln.times, "gaps") for ln in read]
    assert sum(r != want for r, want in zip(raw, lines)) >= 1, raw  # this page does merge words
    assert restored == lines, raw
