"""Sample images for the offline demo: real photos shipped inside installed packages plus rendered
text pages (for OCR), and a few bad URLs. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# skimage.data images that ship inside the scikit-image wheel (no pooch download).
SKIMAGE_PHOTOS = {
    "astronaut": "an astronaut in a spacesuit with a flag",
    "chelsea": "a tabby cat",
    "coffee": "a cup of coffee on a saucer",
    "rocket": "a rocket on a launch pad",
    "hubble_deep_field": "galaxies in the Hubble deep field",
    "immunohistochemistry": "a stained tissue sample",
    "retina": "a photo of a retina",
    "camera": "a man with a camera on a tripod",
    "coins": "old coins on a table",
    "clock": "a wall clock",
    "moon": "the surface of the moon",
    "logo": "the scikit-image logo",
}

TEXT_PAGES = [
    ["REGION AWARE CLUSTERS", "Open Data Pipeline", "Shard 17 of 42"],
    ["INVOICE 2048", "Total due: 314 EUR", "Thank you"],
    ["Coffee Menu", "Espresso 2.50", "Cappuccino 3.20", "Latte 3.40"],
    ["STOP", "Bus Station", "Platform 9"],
    ["Training Shards", "Parquet and DuckDB", "Vision Transformer"],
    ["OPEN 24 HOURS", "Pharmacy", "Main Street 12"],
]


@dataclass(frozen=True)
class DemoImage:
    """One sample: a file name, its bytes, its caption, and the text lines printed on it (if any)."""

    name: str
    data: bytes
    caption: str
    lines: tuple[str, ...] = ()


def find_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A TrueType font that ships with matplotlib (DejaVu Sans), at ``size`` pixels."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size)


def render_text_page(lines: list[str], width: int = 1100, line_height: int = 110) -> Image.Image:
    """Dark text lines on a light background, large enough to survive the 336-px RICE filter."""
    height = max(400, 80 + line_height * len(lines))
    img = Image.new("RGB", (width, height), (245, 242, 235))
    draw = ImageDraw.Draw(img)
    y = 40
    for i, line in enumerate(lines):
        font = find_font(64 if i == 0 else 52, bold=(i == 0))
        draw.text((50, y), line, fill=(20, 20, 30), font=font)
        y += line_height
    return img


def _encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, quality=92) if fmt == "JPEG" else img.save(buf, fmt)
    return buf.getvalue()


def _photo(name: str) -> Image.Image:
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    img = Image.fromarray(arr.astype(np.uint8))
    if min(img.size) < 400:  # upscale small samples so RICE's 336-px image filter keeps them
        scale = 400 / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    return img


def demo_images(limit: int | None = None) -> list[DemoImage]:
    """The demo's sample images (photos from scikit-image and ultralytics, rendered text pages)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    out: list[DemoImage] = []
    for name, caption in SKIMAGE_PHOTOS.items():
        out.append(DemoImage(f"{name}.jpg", _encode(_photo(name)), caption))
    spec = importlib.util.find_spec("ultralytics")  # locate its bundled photos without importing it
    if spec and spec.origin:
        assets = Path(spec.origin).parent / "assets"
        for f, caption in (("bus.jpg", "a bus in a street with people"), ("zidane.jpg", "two men in suits")):
            if (assets / f).exists():
                out.append(DemoImage(f, (assets / f).read_bytes(), caption))
    for i, lines in enumerate(TEXT_PAGES):
        out.append(DemoImage(f"text-{i}.png", _encode(render_text_page(lines), "PNG"),
                             "a page that reads: " + " / ".join(lines), tuple(lines)))
    return out[:limit] if limit else out
