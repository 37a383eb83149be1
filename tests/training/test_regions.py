"""RegionTransform: exactly N regions, boxes follow the letterbox, token ids sampled to M."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from regionset.training.rice.regions import RegionTransform, pad_ids, sample_indices


def _row(regions, w=200, h=100):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "JPEG")
    return {"key": "k", "jpg": buf.getvalue(), "regions": regions}


def _obj(box, cid):
    return {"region_id": "r", "box": box, "source": "object", "class_id": cid, "token_ids": []}


def test_boxes_scale_with_the_letterbox_and_masks_follow():
    t = RegionTransform(image_size=64, patch_size=16, num_regions=2, num_tokens=3, num_image_classes=2)
    s = t(_row([_obj([100, 0, 200, 50], 4), _obj([0, 50, 50, 100], 2)]), np.random.default_rng(0))
    assert s["image"].shape == (3, 64, 64)
    boxes = sorted(s["boxes"].tolist())
    assert boxes == [[0.0, 16.0, 16.0, 32.0], [32.0, 0.0, 64.0, 16.0]]  # 200x100 -> 64x32, padded below
    assert sorted(s["token_mask"].sum(1).tolist()) == [1, 2]
    assert sorted(s["image_class_ids"].tolist()) == [2, 4]


def test_exactly_n_regions_subset_or_resampled():
    t = RegionTransform(image_size=32, patch_size=8, num_regions=4, num_tokens=2)
    few = t(_row([_obj([0, 0, 50, 50], 1), _obj([60, 0, 120, 60], 3)]), np.random.default_rng(0))
    assert few["class_ids"].shape == (4,) and set(few["class_ids"].tolist()) == {1, 3}
    many = t(_row([_obj([i, 0, i + 20, 20], i) for i in range(9)]), np.random.default_rng(0))
    assert len(set(many["class_ids"].tolist())) == 4
    none = t(_row([]), np.random.default_rng(0))
    assert not none["region_valid"].any() and (none["class_ids"] == -1).all()
    assert t({"key": "bad", "jpg": b"not an image", "regions": []}, np.random.default_rng(0)) is None


def test_text_tokens_unique_sampled_and_padded():
    rng = np.random.default_rng(0)
    ids, valid = pad_ids([5, 5, 7], 4, rng)
    assert ids.tolist() == [5, 7, -1, -1] and valid.tolist() == [True, True, False, False]
    ids, _ = pad_ids(list(range(20)), 4, rng)
    assert len(set(ids.tolist())) == 4
    picked = sample_indices(3, 5, rng).tolist()
    assert len(picked) == 5 and set(picked) == {0, 1, 2}
    t = RegionTransform(image_size=32, patch_size=8, num_regions=1, num_tokens=3)
    text = {"region_id": "t", "box": [0, 0, 100, 50], "source": "text", "class_id": -1, "token_ids": [9, 8]}
    s = t(_row([text]), rng)
    assert s["is_text"].tolist() == [True] and s["token_ids"].tolist() == [[9, 8, -1]]
    assert s["class_ids"].tolist() == [-1]
