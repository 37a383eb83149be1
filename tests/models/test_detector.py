"""Ultralytics wrapper pieces that need no weights: SAM-style masks -> boxes."""

from __future__ import annotations

import numpy as np

from regionset.models.detector import _mask_boxes


def test_mask_boxes_scale_to_the_original_image():
    masks = np.zeros((2, 100, 200), np.float32)
    masks[0, 10:20, 30:50] = 1.0
    det = _mask_boxes(masks, (200, 400))  # masks at half the original resolution
    assert det.boxes.tolist() == [[60.0, 20.0, 100.0, 40.0]]  # the empty mask gives no box
    assert det.scores.tolist() == [1.0] and det.classes == [None]
