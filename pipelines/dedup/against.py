"""Evaluation images for decontamination (``dedup.against``): local files, folders, list files, URLs."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pyarrow as pa

from regionset.stages.dedup import image_hashes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _read(src: str, timeout: float) -> bytes:
    """The bytes of one evaluation image; FileNotFoundError names it when it cannot be read."""
    try:
        if _is_url(src):
            with urllib.request.urlopen(src, timeout=timeout) as r:  # noqa: S310 - URLs from the config
                return r.read()
        return Path(src).read_bytes()
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"dedup.against: cannot read {src}: {e}") from None


def expand_sources(entries: tuple[str, ...]) -> list[str]:
    """Each entry of ``dedup.against`` as image paths or URLs: a folder gives its images (recursively),
    a ``.txt`` file its lines, anything else itself.

    Args:
        entries: the configured paths and URLs.
    """
    out: list[str] = []
    for e in entries:
        p = Path(e)
        if _is_url(e):
            out.append(e)
        elif p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.suffix.lower() == ".txt" and p.is_file():
            out.extend(line.strip() for line in p.read_text().splitlines() if line.strip())
        elif not p.is_file():
            raise FileNotFoundError(f"dedup.against: cannot read {e}: no such file or folder")
        else:
            out.append(e)
    return out


def against_hashes(entries: tuple[str, ...], border_tol: float, timeout: float = 10.0) -> pa.Table:
    """A table (src, phash) of the evaluation images; an unreadable one raises FileNotFoundError.

    Args:
        entries: ``dedup.against``.
        border_tol: the hashing stage's ``border_tol`` (evaluation images are hashed the same way).
        timeout: seconds per URL.
    """
    srcs, hashes = [], []
    for src in expand_sources(entries):
        try:
            _, ph = image_hashes(_read(src, timeout), border_tol)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001 - any decode error becomes one clear line
            raise FileNotFoundError(f"dedup.against: cannot decode {src}: {type(e).__name__}") from None
        srcs.append(src)
        hashes.append(ph)
    return pa.table({"src": pa.array(srcs, pa.string()), "phash": pa.array(hashes, pa.int64())})
