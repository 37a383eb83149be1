"""RapidOCR settings on rendered pages: exact-match rate, space-insensitive rate and seconds per page.

Pages of short lines (DejaVu Sans, 16-40 px) black on white, some rotated by a few degrees, are
read with each setting; a line counts as read when one recognised string equals it exactly (or
equals it once spaces are removed, for the second rate; the third rate is exact after the ocr stage's
default space restoration, ``models/ocr_spaces.py``). This is how ``OcrConfig``'s defaults were
chosen (docs/region-stages.md).

    python bench/ocr_tuning.py --pages 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from regionset import models  # noqa: E402, F401  (offline environment defaults)
from regionset.models.ocr import RapidOcr  # noqa: E402
from regionset.models.ocr_spaces import restore_spaces  # noqa: E402
from tests.synth import render_text_image, text_lines  # noqa: E402

SETTINGS = {
    "rapidocr defaults (min 736, cls on, unclip 1.6)":
        {"det_limit_type": "min", "det_limit_side_len": 736, "use_cls": True, "unclip_ratio": 1.6},
    "max 960, cls off, unclip 1.6":
        {"det_limit_type": "max", "det_limit_side_len": 960, "use_cls": False, "unclip_ratio": 1.6},
    "max 960, cls off, unclip 1.8":
        {"det_limit_type": "max", "det_limit_side_len": 960, "use_cls": False, "unclip_ratio": 1.8},
    "max 960, cls off, unclip 2.0 (regionset default)":
        {"det_limit_type": "max", "det_limit_side_len": 960, "use_cls": False, "unclip_ratio": 2.0},
    "max 960, cls off, unclip 2.2":
        {"det_limit_type": "max", "det_limit_side_len": 960, "use_cls": False, "unclip_ratio": 2.2},
}


def pages(n: int) -> list[tuple[list[str], object]]:
    """``n`` pages: mostly 8 lines of 16-40 px; every third page rotated by 3-5 degrees."""
    out = []
    for p in range(n):
        lines = text_lines(8, seed=100 + p)
        sizes = [16, 20, 24, 28, 32, 36, 40, 22]
        angle = (3.0 + p % 3) if p % 3 == 2 else 0.0
        out.append((lines, render_text_image(lines, sizes, angle=angle)[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    corpus = pages(args.pages)
    total = sum(len(lines) for lines, _ in corpus)
    print(f"| setting | exact | ignoring spaces | exact after restore_spaces | s/page |   ({args.pages} pages, {total} lines)")
    print("|---|---|---|---|---|")
    for name, kw in SETTINGS.items():
        ocr = RapidOcr(threads=args.threads, **kw)
        ocr(corpus[0][1])  # warm-up
        exact = loose = fixed = 0
        t = time.perf_counter()
        for lines, image in corpus:
            read = ocr(image)
            got = [ln.text for ln in read]
            restored = [restore_spaces(ln.text, ln.times) for ln in read]
            squashed = {g.replace(" ", "") for g in got}
            exact += sum(line in got for line in lines)
            loose += sum(line.replace(" ", "") in squashed for line in lines)
            fixed += sum(line in restored for line in lines)
        sec = (time.perf_counter() - t) / len(corpus)
        print(f"| {name} | {exact}/{total} ({exact / total:.0%}) | {loose}/{total} ({loose / total:.0%}) | "
              f"{fixed}/{total} ({fixed / total:.0%}) | {sec:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
