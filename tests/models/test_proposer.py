"""The weight-free proposer finds pasted objects, keeps the count sane and is deterministic."""

from __future__ import annotations

import numpy as np

from regionset.models.proposer import FelzenszwalbProposer, ProposerConfig, nms
from tests.synth import box_iou, synthetic_scene


def test_proposer_recall_at_iou_05_on_pasted_objects():
    proposer = FelzenszwalbProposer()
    hits = total = 0
    for seed in range(6):
        image, truth = synthetic_scene(seed, n=4)
        boxes, scores = proposer(image)
        assert boxes.dtype == np.float32 and len(boxes) == len(scores) <= ProposerConfig().max_proposals
        assert np.all(np.diff(scores) <= 1e-6), "best first"
        best = box_iou(truth, boxes).max(1)
        hits += int((best >= 0.5).sum())
        total += len(truth)
    print(f"proposer recall@0.5: {hits}/{total}")
    assert hits / total >= 0.9


def test_proposer_is_deterministic_and_in_bounds():
    image, _ = synthetic_scene(11)
    a = FelzenszwalbProposer()(image)
    b = FelzenszwalbProposer()(image)
    np.testing.assert_array_equal(a[0], b[0])
    h, w = image.shape[:2]
    assert a[0][:, [0, 2]].max() <= w and a[0][:, [1, 3]].max() <= h and a[0].min() >= 0
    assert np.all(a[0][:, 2] > a[0][:, 0]) and np.all(a[0][:, 3] > a[0][:, 1])


def test_proposer_caps_and_flat_image():
    image, _ = synthetic_scene(3)
    boxes, _ = FelzenszwalbProposer(ProposerConfig(max_proposals=5))(image)
    assert len(boxes) == 5
    flat = np.full((400, 500, 3), 128, np.uint8)
    boxes, _ = FelzenszwalbProposer()(flat)
    assert len(boxes) == 0  # one segment = the whole image, which is not a proposal


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5)
    assert keep.tolist() == [1, 2]
