"""Image files of the report: region crops and images with their boxes drawn on.

Boxes are in pixels of the stored image (``images.jpg``). Object boxes are drawn in amber with a
solid outline, text (OCR) boxes in blue, each tagged with its row number in the page's table.
A JPEG that fails to decode yields no file (the page shows why) instead of an exception.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from regionset.schemas.tables import SOURCE_OBJECT, SOURCE_TEXT

BOX_COLORS = {SOURCE_OBJECT: (232, 137, 12), SOURCE_TEXT: (31, 119, 212)}
OTHER_COLOR = (200, 40, 160)
CROP_SIDE = 128
IMAGE_SIDE = 720


def decode(jpg: bytes | None) -> Image.Image | None:
    """Decode stored image bytes to RGB, or None if they do not decode."""
    if not jpg:
        return None
    try:
        img = Image.open(io.BytesIO(jpg))
        img.load()
        return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _clamp_box(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int] | None:
    x0, y0, x1, y1 = (float(v) if v is not None else 0.0 for v in box)
    x0, x1 = sorted((min(max(x0, 0), w), min(max(x1, 0), w)))
    y0, y1 = sorted((min(max(y0, 0), h), min(max(y1, 0), h)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return int(x0), int(y0), int(round(x1)), int(round(y1))


def save_crop(img: Image.Image, box: Sequence[float], path: Path, side: int = CROP_SIDE) -> bool:
    """Save the region ``box`` of ``img`` scaled to fit ``side`` × ``side``; False if the box is empty.

    Args:
        img: the decoded stored image.
        box: ``(x0, y0, x1, y1)`` in pixels of the stored image.
        path: JPEG file to write.
        side: longest side of the saved crop.
    """
    b = _clamp_box(box, img.width, img.height)
    if b is None:
        return False
    crop = img.crop(b)
    scale = side / max(crop.width, crop.height)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    crop = crop.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    crop.save(path, "JPEG", quality=85)
    return True


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def save_overlay(img: Image.Image, regions: Sequence[dict[str, Any]], path: Path,
                 side: int = IMAGE_SIDE) -> bool:
    """Save ``img`` scaled to fit ``side`` with every region's box and row number drawn on it.

    Args:
        img: the decoded stored image.
        regions: dicts with ``source``, ``x0``, ``y0``, ``x1``, ``y1`` (stored-image pixels).
        path: JPEG file to write.
        side: longest side of the saved image.
    """
    scale = min(1.0, side / max(img.width, img.height))
    canvas = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                        Image.Resampling.LANCZOS) if scale < 1 else img.copy()
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for i, r in enumerate(regions, 1):
        b = _clamp_box((r["x0"], r["y0"], r["x1"], r["y1"]), img.width, img.height)
        if b is None:
            continue
        x0, y0, x1, y1 = (v * scale for v in b)
        color = BOX_COLORS.get(r.get("source"), OTHER_COLOR)
        draw.rectangle((x0, y0, x1, y1), outline=color, width=2 if r.get("source") == SOURCE_TEXT else 3)
        tag = str(i)
        tw, th = draw.textbbox((0, 0), tag, font=font)[2:]
        ty = y0 - th - 3 if y0 - th - 3 >= 0 else y0
        draw.rectangle((x0, ty, x0 + tw + 4, ty + th + 3), fill=color)
        draw.text((x0 + 2, ty + 1), tag, fill=(255, 255, 255), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, "JPEG", quality=85)
    return True
