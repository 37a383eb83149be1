"""ocr stage: text regions with text and score, confidence filter counted, bad rows skipped."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from regionset.models.ocr import TextLine
from regionset.models.ocr_spaces import CharTimes
from regionset.models.tokenizer import TokenLabeler
from regionset.schemas import images_schema, regions_schema, validate_table
from regionset.stages.ocr import OcrConfig, OcrStage
from tests.stages.test_detect import ledger
from tests.synth import encode, render_text_image, text_lines


class FakeOcr:
    """Returns fixed lines whatever the image."""

    model_id = "fake-ocr"

    def __init__(self, lines):
        self.lines = lines

    def __call__(self, image):
        return self.lines


def _quad(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_ocr_stage_reads_rendered_lines():
    lines = text_lines(4, seed=5)
    image, _ = render_text_image(lines, [24, 28, 32, 36])
    stage = OcrStage()
    stage.ensure_setup()
    out = stage.process(ledger([image]))
    validate_table(out, regions_schema(), "regions")
    assert out.column("text").to_pylist() == lines  # reading order
    assert [t.replace(" ", "") for t in out.column("text_raw").to_pylist()] == [t.replace(" ", "") for t in lines]
    assert set(out.column("source").to_pylist()) == {"text"}
    assert min(out.column("score").to_pylist()) > 0.7
    assert "rapidocr" in out.column("proposer")[0].as_py()
    assert stage.lineage()["warnings"] == []


def test_confidence_and_length_filters_are_counted():
    stage = OcrStage(OcrConfig(min_score=0.7, max_regions=2))
    stage._engine = FakeOcr([
        TextLine(_quad(10, 10, 100, 30), "kept one", 0.95),
        TextLine(_quad(10, 40, 100, 60), "kept two", 0.90),
        TextLine(_quad(10, 70, 100, 90), "capped", 0.80),
        TextLine(_quad(10, 100, 100, 120), "unsure", 0.70),  # RICE keeps > 0.7
        TextLine(_quad(10, 130, 100, 150), " ", 0.99),
        TextLine(_quad(-5, 160, 100, 180), "clipped", 0.99),
    ])
    stage.model_id = "fake-ocr"
    stage._ready = True
    out = stage.process(ledger([np.full((400, 400, 3), 255, np.uint8)]))
    c = stage.take_counters()
    assert c["drop:low_confidence"] == 1 and c["drop:text_too_short"] == 1
    assert c["drop:over_max_regions"] == 2 and out.num_rows == 2
    assert out.column("text").to_pylist() == ["kept one", "clipped"]  # reading order
    assert min(out.column("x0").to_pylist()) == 0.0  # clipped to the image


def test_bad_rows_are_counted_skips():
    stage = OcrStage()
    stage._engine = FakeOcr([])
    stage._ready = True
    table = pa.Table.from_pylist([
        {"key": "a", "url": "u", "status": "failed_to_download"},
        {"key": "b", "url": "u", "status": "success", "jpg": b"\xff\xd8\xff garbage"},
        {"key": "c", "url": "u", "status": "success", "jpg": encode(np.zeros((100, 100, 3), np.uint8)),
         "width": 100, "height": 100, "original_width": 100, "original_height": 100},
    ], schema=images_schema())
    out = stage.process(table)
    assert out.num_rows == 0
    assert stage.take_counters() == {"skip:not_downloaded": 1, "skip:corrupt_image": 1, "skip:image_too_small": 1}


def test_engine_error_is_a_counted_skip():
    class Boom:
        model_id = "boom"

        def __call__(self, image):
            raise RuntimeError("onnx fell over")

    stage = OcrStage()
    stage._engine = Boom()
    stage._ready = True
    out = stage.process(ledger([np.full((400, 400, 3), 255, np.uint8)]))
    assert out.num_rows == 0 and stage.take_counters()["skip:ocr_error:RuntimeError"] == 1


def _merged(text: str, space_before: int) -> CharTimes:
    return CharTimes(list(range(0, 2 * len(text), 2)), [0.4 if i == space_before else 0.0 for i in range(len(text))])


def test_restored_text_and_raw_text_are_both_kept():
    raw = "saffroncopper"
    for mode, want in (("gaps", "saffron copper"), ("off", raw)):
        stage = OcrStage(OcrConfig(restore_spaces=mode))
        stage._engine = FakeOcr([TextLine(_quad(10, 10, 200, 40), raw, 0.95, _merged(raw, 7))])
        stage._ready = True
        out = stage.process(ledger([np.full((400, 400, 3), 255, np.uint8)]))
        assert out.column("text").to_pylist() == [want] and out.column("text_raw").to_pylist() == [raw]


def test_ocr_reads_the_original_bytes_and_boxes_stay_in_stored_pixels():
    class SeeingOcr(FakeOcr):
        def __call__(self, image):
            self.shape = image.shape
            return self.lines

    table = ledger([np.full((400, 400, 3), 255, np.uint8)], scale=2.0)
    original = encode(np.full((800, 800, 3), 255, np.uint8))
    table = table.set_column(table.schema.get_field_index("original"), "original", pa.array([original], pa.binary()))
    for use, shape, x1 in ((True, (800, 800, 3), 100.0), (False, (400, 400, 3), 200.0)):
        stage = OcrStage(OcrConfig(use_original=use))
        stage._engine = SeeingOcr([TextLine(_quad(20, 20, 200, 60), "full size", 0.95)])
        stage._ready = True
        out = stage.process(table)
        assert stage._engine.shape == shape and out.column("x1").to_pylist() == [x1]


def test_token_labels_follow_the_words_after_restoration():
    """Real OCR on lines where PP-OCRv4 merges words, then assign: each line's token_ids are the
    tokenizer's ids of its true words (specials and punctuation removed, M = 10, sampled by id)."""
    from PIL import Image

    from regionset.schemas import embeddings_schema
    from regionset.stages.assign import AssignStage

    lines = text_lines(6, seed=11)
    big, _ = render_text_image(lines, [26, 30, 34, 38, 42, 46])
    image = np.asarray(Image.fromarray(big).resize((int(big.shape[1] * 0.6), int(big.shape[0] * 0.6)),
                                                   Image.Resampling.LANCZOS))
    ocr = OcrStage()
    ocr.ensure_setup()
    regions = ocr.process(ledger([image], scale=1 / 0.6))  # stored at 0.6 of the original
    assert regions.column("text").to_pylist() == lines
    raw = regions.column("text_raw").to_pylist()
    assert raw != lines  # the recogniser did merge words here
    assign = AssignStage()  # no k-means tree: only text regions are labelled
    labels = assign.process(assign.prepare({"embeddings": embeddings_schema(4).empty_table(),
                                            "regions/object": regions.slice(0, 0), "regions/text": regions}))
    labeler = TokenLabeler()
    ids = labels.column("region_id").to_pylist()
    assert ids == regions.column("region_id").to_pylist()
    want = [labeler.labels(line, rid) for line, rid in zip(lines, ids)]
    assert labels.column("token_ids").to_pylist() == want
    assert all(len(t) == 10 for t in want)
    assert any(labeler.labels(r, rid) != w for r, rid, w in zip(raw, ids, want))  # raw text would be wrong


def test_batched_ocr_stage_writes_the_same_table():
    """ocr.batch_images=3 over pages of two sizes, a blank image and a corrupt row: the same rows
    and counters as one image at a time."""
    lines = text_lines(9, seed=21)
    pages = [render_text_image(lines[i:i + 3], [24, 30, 36])[0] for i in (0, 3)]
    pages.append(render_text_image(lines[6:], [20, 28, 40], width=700)[0])
    table = ledger(pages + [np.full((400, 400, 3), 255, np.uint8)])
    jpg = table.column("jpg").to_pylist()
    jpg[1] = b"not a jpeg"
    table = table.set_column(table.schema.get_field_index("jpg"), "jpg", pa.array(jpg, pa.binary()))
    got = {}
    for n in (1, 3):
        stage = OcrStage(OcrConfig(batch_images=n))
        stage.ensure_setup()
        got[n] = (stage.process(table), stage.take_counters())
    assert got[3][0].equals(got[1][0]) and got[3][1] == got[1][1]
    assert got[1][0].num_rows >= 5 and got[1][1]["skip:corrupt_image"] == 1
