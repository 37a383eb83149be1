"""Synthetic test data: rendered text images and scenes with pasted objects, with ground truth."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

WORDS = ("region cluster discrimination vision transformer dataset image object text label token "
         "shard parquet embedding centroid detector camera window garden river market station "
         "number letter paper coffee rocket astronaut yellow orange purple silver morning evening").split()


def font_path() -> str:
    """A TrueType font on this machine: DejaVu Sans from the system, else matplotlib's bundled copy."""
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/TTF/DejaVuSans.ttf"):
        if Path(p).is_file():
            return p
    import matplotlib

    return str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")


def text_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` short lines of lowercase words and a number, unique, reproducible."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        words = [WORDS[i] for i in rng.choice(len(WORDS), size=int(rng.integers(2, 4)), replace=False)]
        line = " ".join(words) + f" {int(rng.integers(10, 999))}"
        if line not in out:
            out.append(line)
    return out


def render_text_image(lines: list[str], sizes: list[int], width: int = 900, angle: float = 0.0,
                      margin: int = 30, gap: int = 14) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Render ``lines`` (one font size each) black on white; optionally rotate the whole page.

    Returns the RGB image and, for unrotated pages, each line's box (x0, y0, x1, y1).
    """
    from PIL import Image, ImageDraw, ImageFont

    fonts = [ImageFont.truetype(font_path(), s) for s in sizes]
    height = margin * 2 + sum(s + gap for s in sizes) + 10
    img = Image.new("RGB", (width, max(height, 336)), "white")
    draw = ImageDraw.Draw(img)
    boxes = []
    y = margin
    for line, font, s in zip(lines, fonts, sizes):
        draw.text((margin, y), line, fill="black", font=font)
        boxes.append(tuple(float(v) for v in draw.textbbox((margin, y), line, font=font)))
        y += s + gap
    if angle:
        img = img.rotate(angle, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)
    return np.asarray(img), boxes


def synthetic_scene(seed: int = 0, size: tuple[int, int] = (480, 640), n: int = 4,
                    min_side: int = 130, max_side: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``n`` photo crops (scikit-image's sample photos) onto a noisy gradient, without overlap.

    Returns the RGB image and the pasted boxes (N x 4, x0 y0 x1 y1).
    """
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([90 + 60 * xx / w, 110 + 40 * yy / h, 100 + 0 * xx], -1) + rng.normal(0, 12, (h, w, 3))
    img = np.clip(bg, 0, 255).astype(np.uint8)
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.immunohistochemistry()]
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(1000):
        if len(boxes) == n:
            break
        oh, ow = int(rng.integers(min_side, max_side)), int(rng.integers(min_side, max_side))
        y0, x0 = int(rng.integers(0, h - oh)), int(rng.integers(0, w - ow))
        b = (x0, y0, x0 + ow, y0 + oh)
        if any(not (b[2] + 8 < o[0] or o[2] + 8 < b[0] or b[3] + 8 < o[1] or o[3] + 8 < b[1]) for o in boxes):
            continue
        src = sources[len(boxes) % len(sources)]
        img[y0:y0 + oh, x0:x0 + ow] = np.asarray(Image.fromarray(src).resize((ow, oh), Image.Resampling.BILINEAR))
        boxes.append(b)
    return img, np.asarray(boxes, dtype=np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N x 4) and ``b`` (M x 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def encode(image: np.ndarray, fmt: str = "JPEG", quality: int = 95) -> bytes:
    """Encode an RGB array as JPEG/PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()
