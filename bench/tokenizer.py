"""OCR tokenizer: RSS of a process after ``TokenLabeler()`` and encode speed, our BPE vs open_clip's.

Each measurement runs in a fresh interpreter, the variants interleaved, median of ``--runs``:

- ``rss``: VmRSS after ``import regionset.models.tokenizer`` and after ``TokenLabeler()`` plus one label, with
  the code of ``--root`` (this checkout) and of ``--before`` (a checkout whose labeler imports open_clip);
- ``time``: seconds to import + construct the tokenizer, then to encode 10,000 OCR-like strings,
  ``regionset.models.clip_bpe.ClipBPE`` vs ``open_clip.tokenizer.SimpleTokenizer`` (ids compared).

    python bench/tokenizer.py --runs 3 --before /work/main
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["exit", "stop", "open", "sale", "route", "parking", "no", "entry", "pharmacy", "hotel", "café", "bank",
         "street", "avenue", "pizza", "coffee", "bus", "taxi", "police", "closed", "push", "pull", "menu", "wifi"]


def ocr_strings(n: int, seed: int = 0) -> list[str]:
    """OCR-like texts: sign words in mixed case, numbers, prices, codes and some noise."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 5)):
            k = rng.random()
            if k < 0.55:
                w = rng.choice(WORDS)
                parts.append(w.upper() if rng.random() < 0.5 else w.title())
            elif k < 0.7:
                parts.append(str(rng.randint(0, 9999)))
            elif k < 0.8:
                parts.append(f"${rng.randint(0, 99)}.{rng.randint(0, 99):02d}")
            else:
                parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-.'/") for _ in range(rng.randint(2, 9))))
        out.append(" ".join(parts))
    return out


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_rss() -> dict:
    import regionset.models.tokenizer as tokenizer

    before = _rss_mib()
    lab = tokenizer.TokenLabeler()
    lab.labels("EXIT Route 66", "r1")
    return {"base_mib": before, "after_mib": _rss_mib(), "torch": "torch" in sys.modules}


def child_time(impl: str, n: int) -> dict:
    texts = ocr_strings(n)
    t0 = time.perf_counter()
    if impl == "ours":
        from regionset.models.clip_bpe import ClipBPE

        tok = ClipBPE()
    else:
        from open_clip.tokenizer import SimpleTokenizer

        tok = SimpleTokenizer()
    t1 = time.perf_counter()
    ids = [tok.encode(t) for t in texts]
    t2 = time.perf_counter()
    return {"construct_s": t1 - t0, "encode_s": t2 - t1, "ids_hash": hash(str(ids))}


def _run(args: list[str], root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "tokenizer.py"), *args], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--texts", type=int, default=10_000)
    ap.add_argument("--before", type=Path, default=None, help="checkout whose TokenLabeler imports open_clip")
    ap.add_argument("--child", choices=["rss", "ours", "open_clip"])
    a = ap.parse_args()
    if a.child == "rss":
        print(json.dumps(child_rss()))
        return
    if a.child:
        print(json.dumps(child_time(a.child, a.texts)))
        return
    rows: dict[str, list[dict]] = {}
    for _ in range(a.runs):
        for name, root in [("after", ROOT), ("before", a.before)]:
            if root is not None:
                rows.setdefault(f"rss {name}", []).append(_run(["--child", "rss"], root))
        for impl in ["ours", "open_clip"]:
            rows.setdefault(f"time {impl}", []).append(_run(["--child", impl, "--texts", str(a.texts)], ROOT))
    hashes = {r["ids_hash"] for k, v in rows.items() if k.startswith("time") for r in v}
    print(f"ids identical: {len(hashes) == 1}")
    for key, runs in rows.items():
        cols = sorted(k for k in runs[0] if k != "ids_hash")
        med = {k: statistics.median(r[k] for r in runs) for k in cols}
        print(key, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in med.items()},
              "all:", [{k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in cols} for r in runs])


if __name__ == "__main__":
    main()
