"""OCR line quality on a rendered set: exact, space-insensitive and token-set F1, per restoration mode.

Every image is a 1280 x 960 canvas of 3-6 lines (fonts found on the machine, 12-64 px, rotations
within +-10 degrees, text/background colours, some blur, JPEG quality 40-95). Lines mix words
(lower, Title, UPPER case), numbers and punctuation ("24/7", "17.5%", "$3.50", "A-113", "mint,").
Each image is read three ways in one run: bare RapidOCR defaults on the original, and the ocr stage
(tuned RapidOCR) on the *stored* image (shortest edge 512, as download keeps it) and on the
*original*; the stage's raw text is then restored with every ``ocr.restore_spaces`` mode. A
recognised line belongs to the ground-truth line whose box holds its centre (pieces are joined left
to right). Rates are over ground-truth lines; "lost" counts lines exact before restoration and not
after. Token-set F1 uses the OCR token labeler (open_clip BPE, punctuation removed).

    python bench/ocr_quality.py --images 30            # report (seed 0)
    python bench/ocr_quality.py --images 30 --seed 1 --tune   # threshold grid (tuning seed)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from regionset import models  # noqa: E402, F401  (offline environment defaults)
from regionset.models.ocr import RapidOcr, TextLine  # noqa: E402
from regionset.models.ocr_spaces import RESTORE_MODES, restore_spaces  # noqa: E402
from regionset.models.tokenizer import TokenLabeler  # noqa: E402
from regionset.stages.ocr import OcrConfig  # noqa: E402

FONT_DIRS = ["/usr/share/fonts", str(Path(np.__file__).parents[1] / "matplotlib/mpl-data/fonts/ttf")]
FONT_NAMES = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Regular.ttf",
              "LiberationSerif-Regular.ttf", "LiberationMono-Regular.ttf", "LiberationSansNarrow-Regular.ttf"]
SIZES = [12, 16, 20, 24, 32, 40, 48, 64]
WORDS = ("saffron copper cedar ivory slate mint harbor velvet amber orchid market station garden river "
         "coffee winter summer open closed sale street north bridge golden silver planet window paper "
         "little house travel ticket office music light morning evening daily fresh bakery hotel").split()
EXTRAS = ["24/7", "17.5%", "$3.50", "A-113", "2026", "No.5", "10:30", "&", "x2", "#7", "(new)", "99"]
STORED_SIDE = 512


def find_fonts() -> list[str]:
    """Paths of the benchmark fonts present on this machine (DejaVu, Liberation)."""
    found = {}
    for d in FONT_DIRS:
        for p in Path(d).rglob("*.ttf") if Path(d).is_dir() else []:
            if p.name in FONT_NAMES:
                found.setdefault(p.name, str(p))
    if not found:
        raise SystemExit("no DejaVu/Liberation .ttf found (looked in /usr/share/fonts and matplotlib)")
    return list(found.values())


def _line_text(rng: np.random.Generator) -> str:
    toks = []
    for _ in range(int(rng.integers(2, 6))):
        if rng.random() < 0.3:
            toks.append(EXTRAS[rng.integers(len(EXTRAS))])
        else:
            w = WORDS[rng.integers(len(WORDS))]
            case = rng.random()
            w = w.upper() if case < 0.2 else w.title() if case < 0.45 else w
            toks.append(w + ("," if rng.random() < 0.1 else "!" if rng.random() < 0.05 else ""))
    return " ".join(toks)


def render_set(n: int, seed: int) -> list[dict]:
    """``n`` images: {"jpg": original JPEG bytes, "lines": [(text, size, box x0 y0 x1 y1)]}."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    out = []
    for _ in range(n):
        dark = rng.random() < 0.25
        bg = tuple(int(v) for v in (rng.integers(0, 60, 3) if dark else rng.integers(190, 256, 3)))
        fg = tuple(int(v) for v in (rng.integers(200, 256, 3) if dark else rng.integers(0, 90, 3)))
        canvas = Image.new("RGB", (1280, 960), bg)
        lines, y = [], 20
        while True:
            size = int(SIZES[rng.integers(len(SIZES))])
            font = ImageFont.truetype(fonts[rng.integers(len(fonts))], size)
            text = _line_text(rng)
            while font.getlength(text) > 1100 and " " in text:
                text = text.rsplit(" ", 1)[0]
            _, _, r, b = font.getbbox(text)
            layer = Image.new("RGBA", (r + 8, b + 8), (0, 0, 0, 0))
            ImageDraw.Draw(layer).text((4, 4), text, font=font, fill=fg + (255,))
            angle = float(rng.uniform(-10, 10)) if rng.random() < 0.6 else 0.0
            if angle:
                layer = layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
            if y + layer.height > 940:
                break
            x = int(rng.integers(20, max(21, 1260 - layer.width)))
            canvas.paste(layer, (x, y), layer)
            lines.append((text, size, (x, y, x + layer.width, y + layer.height)))
            y += layer.height + int(rng.integers(10, 40))
        if rng.random() < 0.3:
            canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.2))))
        buf = io.BytesIO()
        canvas.save(buf, "JPEG", quality=int(rng.choice([40, 60, 80, 95])))
        out.append({"jpg": buf.getvalue(), "lines": lines})
    return out


def stored_version(jpg: bytes) -> tuple[bytes, float]:
    """The image as download stores it (shortest edge 512, JPEG 95) and its scale to the original."""
    from PIL import Image

    im = Image.open(io.BytesIO(jpg)).convert("RGB")
    s = STORED_SIDE / min(im.size)
    im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue(), s


def match(lines: list[TextLine], gt: list[tuple], scale: float) -> list[list[TextLine]]:
    """The recognised lines whose centre lies in each ground-truth box, left to right."""
    got: list[list[TextLine]] = [[] for _ in gt]
    for ln in lines:
        cx, cy = ln.quad.mean(0) / scale
        for j, (_, _, (x0, y0, x1, y1)) in enumerate(gt):
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                got[j].append(ln)
                break
    return [sorted(g, key=lambda ln: ln.quad[:, 0].min()) for g in got]


class Scores:
    """Exact / space-insensitive / token-set F1 tallies of one configuration."""

    def __init__(self, labeler: TokenLabeler) -> None:
        self.labeler, self.exact, self.loose, self.f1, self.n = labeler, [], [], [], 0

    def add(self, pred: str, want: str) -> bool:
        pred = " ".join(pred.split())
        a, b = set(self.labeler.tokens(pred)), set(self.labeler.tokens(want))
        f1 = 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0
        self.exact.append(pred == want)
        self.loose.append(pred.replace(" ", "") == want.replace(" ", ""))
        self.f1.append(f1)
        return pred == want

    def row(self) -> str:
        e, lo, f = (100 * float(np.mean(v)) for v in (self.exact, self.loose, self.f1))
        return f"{e:.1f} % | {lo:.1f} % | {e - lo:+.1f} | {f:.1f}"


def read_all(ocr, images: list[bytes], min_score: float) -> tuple[list[list[TextLine]], float]:
    """Every image's lines above ``min_score`` (the stage's filter) and the median seconds per image."""
    from regionset.stages.region_helpers import decode_rgb

    out, secs = [], []
    for data in images:
        rgb = decode_rgb(data)
        t = time.perf_counter()
        out.append([ln for ln in ocr(rgb) if ln.score > min_score])
        secs.append(time.perf_counter() - t)
    return out, float(np.median(secs))


def bare_rapidocr():
    """RapidOCR with every default (min 736 upscaling, cls on, unclip 1.6, text_score 0.5)."""
    from rapidocr_onnxruntime import RapidOCR

    eng = RapidOCR(print_verbose=False)

    def run(rgb: np.ndarray) -> list[TextLine]:
        res, _ = eng(np.ascontiguousarray(rgb[:, :, ::-1]))
        return [TextLine(np.asarray(q, np.float32).reshape(4, 2), t, float(s)) for q, t, s in res or []]
    return run


def evaluate(data: list[dict], reads: list[list[TextLine]], scale: list[float], labeler: TokenLabeler,
             mode: str, **kw) -> tuple[Scores, dict[int, list[bool]], int]:
    """Scores of one (reads, restoration mode); exact flags per font size; lines lost vs raw."""
    sc, raw, by_size, lost = Scores(labeler), Scores(labeler), defaultdict(list), 0
    for item, lines, s in zip(data, reads, scale):
        for (want, size, _), pieces in zip(item["lines"], match(lines, item["lines"], s)):
            was = raw.add(" ".join(p.text for p in pieces), want)
            now = sc.add(" ".join(restore_spaces(p.text, p.times, mode, **kw) for p in pieces), want)
            by_size[size].append(now)
            lost += was and not now
    return sc, by_size, lost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", action="store_true", help="print the gaps threshold grid instead")
    args = ap.parse_args(argv)
    data = render_set(args.images, args.seed)
    n_lines = sum(len(d["lines"]) for d in data)
    stored = [stored_version(d["jpg"]) for d in data]
    cfg = OcrConfig()
    ocr = RapidOcr()
    ocr(np.zeros((64, 64, 3), np.uint8))  # warm-up
    labeler = TokenLabeler()
    reads_s, sec_s = read_all(ocr, [b for b, _ in stored], cfg.min_score)
    reads_o, sec_o = read_all(ocr, [d["jpg"] for d in data], cfg.min_score)
    ones = [1.0] * len(data)
    if args.tune:
        print("| space_prob | gap_ratio | stored exact | stored lost | original exact | original lost |")
        print("|---|---|---|---|---|---|")
        for sp in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2):
            for gr in (0.0, 2.0, 2.5, 3.0):
                s1, _, l1 = evaluate(data, reads_s, [s for _, s in stored], labeler, "gaps", space_prob=sp, gap_ratio=gr)
                s2, _, l2 = evaluate(data, reads_o, ones, labeler, "gaps", space_prob=sp, gap_ratio=gr)
                print(f"| {sp} | {gr} | {100 * np.mean(s1.exact):.1f} | {l1} | {100 * np.mean(s2.exact):.1f} | {l2} |")
        return 0
    bare = bare_rapidocr()
    bare(np.zeros((64, 64, 3), np.uint8))
    reads_b, sec_b = read_all(bare, [d["jpg"] for d in data], 0.0)
    print(f"{args.images} images, {n_lines} lines, seed {args.seed}; CJK lines: none (no CJK font on this machine)")
    print("\n| reader | image | restore_spaces | exact | space-insensitive | exact - insensitive | token F1 | lost |")
    print("|---|---|---|---|---|---|---|---|")
    sc, _, _ = evaluate(data, reads_b, ones, labeler, "off")
    print(f"| bare RapidOCR defaults | original | - | {sc.row()} | - |")
    sizes = {}
    for name, reads, scale in (("stored", reads_s, [s for _, s in stored]), ("original", reads_o, ones)):
        for mode in RESTORE_MODES[::-1]:
            sc, by_size, lost = evaluate(data, reads, scale, labeler, mode)
            print(f"| ocr stage | {name} | {mode} | {sc.row()} | {lost} |")
            sizes[name, mode] = by_size
    print("\n| font px | lines | stored exact (off) | stored exact (gaps) | original exact (off) | original exact (gaps) |")
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        cells = [f"{100 * np.mean(sizes[k, m][size]):.0f} %" for k in ("stored", "original") for m in ("off", "gaps")]
        print(f"| {size} | {len(sizes['stored', 'off'][size])} | " + " | ".join(cells) + " |")
    kb_s = np.mean([len(b) for b, _ in stored]) / 1024
    kb_o = np.mean([len(d["jpg"]) for d in data]) / 1024
    print(f"\nseconds/image (median): stored {sec_s:.2f}, original {sec_o:.2f} ({sec_o / sec_s:.2f}x), "
          f"bare defaults {sec_b:.2f}; bytes/image: stored {kb_s:.0f} KiB, original {kb_o:.0f} KiB "
          f"(+{kb_o / kb_s:.2f}x if both are kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
