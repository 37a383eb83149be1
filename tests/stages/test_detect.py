"""detect stage: RICE filters with counted reasons, robust decoding, stable ids, ultralytics wiring."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from regionset.schemas import images_schema, regions_schema, validate_table
from regionset.stages.detect import DetectConfig, DetectStage, UltralyticsConfig
from regionset.stages.region_helpers import region_id
from tests.synth import box_iou, encode, synthetic_scene


def ledger(images: list[np.ndarray], scale: float = 1.0, keys: list[str] | None = None) -> pa.Table:
    """An ``images`` shard of successful rows; ``scale`` = original / stored size."""
    rows = []
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        rows.append({"key": keys[i] if keys else f"{i:09d}", "url": f"http://x/{i}.jpg", "caption": None,
                     "status": "success", "error_message": None, "width": w, "height": h,
                     "original_width": round(w * scale), "original_height": round(h * scale),
                     "sha256": None, "jpg": encode(im)})
    return pa.Table.from_pylist(rows, schema=images_schema())


class FakeProposer:
    """Returns fixed boxes (stored pixels) whatever the image."""

    model_id = "fake"

    def __init__(self, boxes, scores):
        self.boxes, self.scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)

    def __call__(self, image):
        return self.boxes.copy(), self.scores.copy()


def test_filters_drop_with_counted_reasons():
    # stored 400 x 500, original 800 x 1000 (scale 2): 128 original px = 64 stored px
    boxes = [[0, 0, 500, 400],            # whole image: too large
             [10, 10, 10, 50],            # zero width: empty
             [10, 10, 60, 200],           # 50 stored = 100 original: too small
             [-20, -20, 50, 50]]          # clipped to 50 x 50 stored: too small
    boxes += [[10 + i, 10, 80 + i, 90] for i in range(25)]  # 70 x 80 stored = 140 x 160 original: kept
    scores = [0.99, 0.9, 0.9, 0.9] + [0.5 + i / 100 for i in range(25)]
    stage = DetectStage(DetectConfig(max_regions=20))
    stage._model = FakeProposer(boxes, scores)
    stage._ready = True
    out = stage.process(ledger([np.full((400, 500, 3), 90, np.uint8)], scale=2.0))
    validate_table(out, regions_schema(), "regions")
    c = stage.take_counters()
    assert c["drop:box_too_large"] == 1 and c["drop:empty_box"] == 1 and c["drop:box_too_small"] == 2
    assert c["drop:over_max_regions"] == 5 and c["regions:object"] == 20 == out.num_rows
    assert out.column("score").to_pylist() == sorted(out.column("score").to_pylist(), reverse=True)
    assert set(out.column("source").to_pylist()) == {"object"}


def test_min_image_side_uses_original_pixels():
    stage = DetectStage(DetectConfig(min_image_side=336))
    stage._model = FakeProposer([[0, 0, 200, 200]], [1.0])
    stage._ready = True
    small = np.full((300, 300, 3), 50, np.uint8)
    stage.process(ledger([small], scale=1.0))
    assert stage.take_counters() == {"skip:image_too_small": 1}
    out = stage.process(ledger([small], scale=1.5))  # stored 300, original 450: kept
    assert out.num_rows == 1


def test_corrupt_tiny_and_failed_rows_are_counted_skips():
    good = ledger([synthetic_scene(0)[0]])
    jpeg = encode(synthetic_scene(1)[0])
    bad = pa.Table.from_pylist([
        {"key": "fail", "url": "u", "status": "failed_to_download", "error_message": "404"},
        {"key": "empty", "url": "u", "status": "success", "jpg": b""},
        {"key": "null", "url": "u", "status": "success", "jpg": None},
        {"key": "garbage", "url": "u", "status": "success", "jpg": b"not an image at all",
         "width": 400, "height": 400, "original_width": 400, "original_height": 400},
        {"key": "truncated", "url": "u", "status": "success", "jpg": jpeg[: len(jpeg) // 3],
         "width": 640, "height": 480, "original_width": 640, "original_height": 480},
        {"key": "tiny", "url": "u", "status": "success", "jpg": encode(np.zeros((1, 1, 3), np.uint8)),
         "width": 1, "height": 1, "original_width": 1, "original_height": 1},
    ], schema=images_schema())
    stage = DetectStage()
    stage.ensure_setup()
    out = stage.process(pa.concat_tables([bad, good]))
    c = stage.take_counters()
    assert c["skip:not_downloaded"] == 1 and c["skip:no_image_bytes"] == 2
    assert c["skip:corrupt_image"] == 2 and c["skip:image_too_small"] == 1 and c["images:decoded"] == 1
    assert out.num_rows > 0 and set(out.column("key").to_pylist()) == {"000000000"}


def test_proposer_stage_finds_pasted_objects_and_ids_are_stable():
    images, truths = zip(*(synthetic_scene(s) for s in range(3)))
    table = ledger(list(images))
    stage = DetectStage()
    stage.ensure_setup()
    out = stage.process(table)
    again = DetectStage()
    again.ensure_setup()
    assert again.process(table).column("region_id").to_pylist() == out.column("region_id").to_pylist()
    hits = 0
    for i, truth in enumerate(truths):
        t = out.filter(pa.compute.equal(out.column("key"), f"{i:09d}"))
        boxes = np.stack([t.column(c).to_numpy() for c in ("x0", "y0", "x1", "y1")], 1)
        hits += int((box_iou(truth, boxes).max(1) >= 0.5).sum())
    assert hits / sum(map(len, truths)) >= 0.9
    r = out.slice(0, 1).to_pylist()[0]
    assert r["region_id"] == region_id(r["key"], "object", (r["x0"], r["y0"], r["x1"], r["y1"]))


def test_lineage_names_the_model():
    meta = DetectStage().lineage()
    assert meta["backend"] == "felzenszwalb" and "skimage" in meta["model"] and meta["warnings"] == []


def test_ultralytics_wiring_random_weights_from_yaml():
    """Wiring test only: yolo11n.yaml builds with random weights offline; its boxes are noise."""
    cfg = DetectConfig(backend="ultralytics", min_box_side=0, max_box_area=1.0, max_regions=10,
                       ultralytics=UltralyticsConfig(model="yolo11n.yaml", device="cpu", imgsz=320, conf=0.0,
                                                     max_det=30, batch_size=2))
    stage = DetectStage(cfg)
    meta = stage.lineage()
    assert "RANDOM weights" in meta["warnings"][0]
    stage.ensure_setup()
    images = [synthetic_scene(s, size=(360, 400))[0] for s in range(3)]
    out = stage.process(ledger(images))
    validate_table(out, regions_schema(), "regions")
    # random weights give many identical boxes: duplicates (same quantised box) are counted drops
    c = stage.take_counters()
    assert c["images:decoded"] == 3 and c["regions:object"] == out.num_rows > 0
    assert c["regions:object"] + c["drop:duplicate"] == 30
    assert set(out.column("key").to_pylist()) == {f"{i:09d}" for i in range(3)}
    assert all("yolo11n.yaml" in p for p in out.column("proposer").to_pylist())
    assert all(n is not None for n in out.column("class_name").to_pylist())


def test_ultralytics_name_needing_download_fails_naming_option(monkeypatch, tmp_path):
    from regionset.models.registry import ModelUnavailable

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REGIONSET_ONLINE", raising=False)
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="detect.ultralytics.model"):
        DetectStage(DetectConfig(backend="ultralytics", ultralytics=UltralyticsConfig(model="yolo11n.pt"))).lineage()


def test_replacing_the_weights_file_changes_the_config_hash(tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"v1")
    stage = DetectStage(DetectConfig(backend="ultralytics", ultralytics=UltralyticsConfig(model=str(weights))))
    before = stage.config_hash(tmp_path)
    weights.write_bytes(b"version 2")
    assert stage.config_hash(tmp_path) != before
    assert DetectStage().config_hash(tmp_path) == DetectStage().config_hash(tmp_path)


def test_ultralytics_same_size_batches_equal_one_image_at_a_time():
    """detect.batch_images=4 groups images by size: each image's rows equal predicting it alone
    (batch_size=1), while mixed-size batches (batch_images=1, batch_size=4) letterbox to one shape
    and change the boxes. Random weights (yolo11n.yaml): the boxes are noise, their equality is not."""
    def run(batch_images: int, batch_size: int):
        u = UltralyticsConfig(model="yolo11n.yaml", device="cpu", imgsz=320, conf=0.0, max_det=30,
                              batch_size=batch_size, half=False)
        stage = DetectStage(DetectConfig(backend="ultralytics", min_box_side=0, max_box_area=1.0, max_regions=30,
                                         batch_images=batch_images, ultralytics=u))
        stage.ensure_setup()
        return stage.process(ledger(images)), stage.take_counters()

    sizes = [(360, 480), (400, 400), (360, 480), (340, 520), (400, 400)]
    images = [synthetic_scene(i, size=s)[0] for i, s in enumerate(sizes)]
    alone, grouped, mixed = run(1, 1), run(4, 4), run(1, 4)
    assert alone[0].num_rows > 0 and grouped[0].equals(alone[0]) and grouped[1] == alone[1]
    assert not mixed[0].equals(alone[0])
