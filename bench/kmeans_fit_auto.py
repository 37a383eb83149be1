"""What ``kmeans.fit: auto`` costs: its footer-only resolution against the sample pass it precedes.

Writes a Gaussian mixture as real embedding + region shards (fp16, as the pipeline stores them),
then times ``resolve_fit`` (Parquet footers of ``embeddings/`` and ``regions/object/``) and
``uniform_sample`` (the local fit's one streaming pass) side by side, median of ``--repeats``.
Prints one JSON line.

    python bench/kmeans_fit_auto.py                       # the sizes recorded in BENCHMARKS.md
    python bench/kmeans_fit_auto.py --shards 1000 --rows 5000 --d 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from regionset.pipelines.kmeans.config import KMeansConfig
    from regionset.pipelines.kmeans.fit_choice import resolve_fit
    from regionset.pipelines.kmeans.sample import uniform_sample
    from tests.label_data import write_mixture

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--rows", type=int, default=1000, help="regions per shard")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--sample", type=int, default=1_000_000, help="kmeans.sample_size")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_mixture(out, a.shards, a.rows, d=a.d, k=50)
        shards = list(range(a.shards))
        kc = KMeansConfig(sample_size=a.sample)
        resolve_s, sample_s = [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            choice = resolve_fit(out, kc, shards)
            resolve_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            uniform_sample(out, shards, tuple(kc.sources), kc.sample_size, kc.seed)
            sample_s.append(time.perf_counter() - t)
    r, s = statistics.median(resolve_s), statistics.median(sample_s)
    print(json.dumps({"shards": a.shards, "rows": a.shards * a.rows, "d": a.d, "fit": choice.fit,
                      "sample_rows": choice.sample_rows, "resolve_s": round(r, 3), "sample_pass_s": round(s, 3),
                      "resolve_ms_per_shard": round(1000 * r / a.shards, 2), "sample_pass_over_resolve": round(s / r, 1)}))


if __name__ == "__main__":
    main()
