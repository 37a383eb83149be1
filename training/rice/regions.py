"""Per-image region sampling for region-level training: N boxes, patch-token masks, labels.

:class:`RegionTransform` turns one ``train`` row (``regionset.schemas.tables.train_schema``) into fixed-size
tensors: the letterboxed image, exactly ``num_regions`` regions (a random subset when there are
more, padded by resampling when there are fewer), each region's box in model-input pixels, the
mask of patch tokens it covers, its object class id (-1 for text) and up to ``num_tokens`` OCR
token ids with validity masks, plus the image's object class ids for an image-level (CLS) term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from regionset.schemas.tables import SOURCE_TEXT
from regionset.training.data import decode_image, letterbox, to_tensor


def box_token_mask(boxes: np.ndarray, image_size: int, patch_size: int) -> np.ndarray:
    """Which patch tokens each box covers: a token is inside when its patch overlaps the box.

    A box that overlaps no patch (empty or outside the image) gets the patch holding its centre,
    so every region attends to at least one token.

    Args:
        boxes: [R, 4] x0, y0, x1, y1 in model-input pixels.
        image_size: model input side (pixels).
        patch_size: patch side (pixels).

    Returns:
        bool [R, grid * grid], row-major over the patch grid.
    """
    g = image_size // patch_size
    lo = np.arange(g, dtype=np.float32) * patch_size
    hi = lo + patch_size
    bx = np.asarray(boxes, np.float32).reshape(-1, 4)
    in_x = (bx[:, None, 0] < hi[None]) & (bx[:, None, 2] > lo[None])  # [R, g]
    in_y = (bx[:, None, 1] < hi[None]) & (bx[:, None, 3] > lo[None])
    mask = (in_y[:, :, None] & in_x[:, None, :]).reshape(len(bx), g * g)
    for r in np.flatnonzero(~mask.any(1)):
        cx = int(np.clip((bx[r, 0] + bx[r, 2]) / 2 // patch_size, 0, g - 1))
        cy = int(np.clip((bx[r, 1] + bx[r, 3]) / 2 // patch_size, 0, g - 1))
        mask[r, cy * g + cx] = True
    return mask


def sample_indices(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``k`` indices into ``n`` items: a subset if n >= k, else all plus resampled ones."""
    if n == 0:
        return np.zeros(0, np.int64)
    if n >= k:
        return np.sort(rng.choice(n, size=k, replace=False))
    return np.concatenate([np.arange(n), rng.choice(n, size=k - n, replace=True)])


def pad_ids(ids: list[int], k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unique ids, sampled down to ``k`` if more, padded with -1; returns (ids [k], valid [k])."""
    uniq = np.array(list(dict.fromkeys(int(i) for i in ids if i is not None and i >= 0)), np.int64)
    if len(uniq) > k:
        uniq = uniq[np.sort(rng.choice(len(uniq), size=k, replace=False))]
    out = np.full(k, -1, np.int64)
    out[: len(uniq)] = uniq
    return out, out >= 0


@dataclass(frozen=True)
class RegionTransform:
    """Row -> sample dict of tensors (see module doc). Picklable, so DataLoader workers get it.

    Args:
        image_size: model input side; images are letterboxed (long side fit, pad bottom/right).
        patch_size: ViT patch side, for the token masks.
        num_regions: N regions per image.
        num_tokens: M OCR token ids per text region.
        num_image_classes: object class ids kept per image for the CLS term.
    """

    image_size: int = 224
    patch_size: int = 16
    num_regions: int = 10
    num_tokens: int = 10
    num_image_classes: int = 10

    def __call__(self, row: dict, rng: np.random.Generator) -> dict | None:
        try:
            img = decode_image(row["jpg"])
        except Exception:  # a broken image is skipped, never fatal to training
            return None
        arr, scale = letterbox(img, self.image_size)
        w, h = img.size[0] * scale, img.size[1] * scale
        regions = []
        for reg in row.get("regions") or []:
            box = np.asarray(reg["box"], np.float32) * scale
            box = np.clip(box, 0, [w, h, w, h])
            if box[2] > box[0] and box[3] > box[1]:
                regions.append((box, reg))
        n, m = self.num_regions, self.num_tokens
        idx = sample_indices(len(regions), n, rng)
        boxes = np.zeros((n, 4), np.float32)
        class_ids = np.full(n, -1, np.int64)
        token_ids = np.full((n, m), -1, np.int64)
        is_text = np.zeros(n, bool)
        for j, i in enumerate(idx):
            box, reg = regions[i]
            boxes[j] = box
            if reg["source"] == SOURCE_TEXT:
                is_text[j] = True
                token_ids[j] = pad_ids(reg.get("token_ids") or [], m, rng)[0]
            else:
                class_ids[j] = reg["class_id"] if reg["class_id"] is not None else -1
        valid = np.zeros(n, bool)
        valid[: len(idx)] = True
        if len(idx) == 0:
            boxes[:] = (0, 0, self.image_size, self.image_size)
        objects = [r["class_id"] for _, r in regions if r["source"] != SOURCE_TEXT]
        image_ids, _ = pad_ids(objects, self.num_image_classes, rng)
        return {
            "image": to_tensor(arr),
            "boxes": torch.from_numpy(boxes),
            "token_mask": torch.from_numpy(box_token_mask(boxes, self.image_size, self.patch_size)),
            "region_valid": torch.from_numpy(valid),
            "is_text": torch.from_numpy(is_text),
            "class_ids": torch.from_numpy(class_ids),
            "token_ids": torch.from_numpy(token_ids),
            "image_class_ids": torch.from_numpy(image_ids),
            "key": row["key"],
        }


def collate_regions(samples: list[dict]) -> dict:
    """Stack :class:`RegionTransform` samples into a batch (``key`` stays a list of str)."""
    out = {k: torch.stack([s[k] for s in samples]) for k in samples[0] if k != "key"}
    out["key"] = [s["key"] for s in samples]
    return out
