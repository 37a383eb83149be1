"""Look at downloaded bytes before img2dataset's resizer decodes them.

Refuses what is not a raster image (HTML, SVG, text, empty bodies), truncated JPEG/PNG files, and
decompression bombs (dimensions read from the header, before any pixel is decoded). Normalises what
OpenCV would get wrong: EXIF orientation (so boxes live in the upright frame), CMYK, 16-bit and
palette-with-transparency PNGs, animated GIF/WebP (first frame) — these are re-encoded as PNG.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

_NEEDS_NORMALISING_MODES = {"CMYK", "I;16", "I;16B", "I;16L", "I", "F", "P", "PA", "LA", "YCbCr", "1"}


class ImageRejected(ValueError):
    """The bytes are not an image regionset will store; the message is the ledger reason."""


def _sniff_non_image(data: bytes) -> str | None:
    head = data[:512].lstrip().lower()
    if not data:
        return "empty body"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "not an image: html"
    if head.startswith(b"<?xml") or b"<svg" in head:
        return "not a raster image: svg"
    if head.startswith((b"\x1f\x8b",)):
        return "not an image: gzip data"
    return None


def _truncated(fmt: str, data: bytes) -> bool:
    if fmt == "JPEG":
        return b"\xff\xd9" not in data[-1024:]
    if fmt == "PNG":
        return b"IEND" not in data[-64:]
    return False


def check_image(data: bytes, max_pixels: float) -> bytes:
    """Return bytes safe to hand to the resizer (the original, or a normalised PNG).

    Args:
        data: the downloaded body.
        max_pixels: largest width × height accepted, checked from the header before decoding.

    Raises:
        ImageRejected: with the ledger reason.
    """
    reason = _sniff_non_image(data)
    if reason:
        raise ImageRejected(reason)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except Image.DecompressionBombError as err:
        raise ImageRejected(f"decompression bomb: {err}") from None
    except Exception:
        text = data[:64]
        if all(32 <= b < 127 or b in (9, 10, 13) for b in text):
            raise ImageRejected("not an image: text") from None
        return data  # unknown to PIL: let OpenCV try (it knows a few formats PIL does not)
    w, h = img.size
    if w * h > max_pixels:
        raise ImageRejected(f"decompression bomb: {w}x{h} pixels exceeds {int(max_pixels)}")
    if w < 1 or h < 1:
        raise ImageRejected("image has no pixels")
    fmt = img.format or ""
    if _truncated(fmt, data):
        raise ImageRejected(f"truncated {fmt.lower()} file")
    try:
        orientation = img.getexif().get(0x0112, 1) if fmt in ("JPEG", "WEBP", "PNG", "TIFF") else 1
    except Exception as err:
        raise ImageRejected(f"corrupt {fmt.lower() or 'image'}: {err}") from None
    animated = getattr(img, "is_animated", False)
    transparent = "transparency" in img.info
    if orientation in (None, 1) and not animated and img.mode not in _NEEDS_NORMALISING_MODES \
            and not transparent and fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        return data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                img = img.point(lambda v: v / 256).convert("L") if img.mode != "I" else img.convert("L")
            if img.mode in ("P", "PA", "LA", "RGBA") or transparent:
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, "PNG", compress_level=1)
    except Exception as err:
        raise ImageRejected(f"cannot decode {fmt.lower() or 'image'}: {err}") from None
    return buf.getvalue()
