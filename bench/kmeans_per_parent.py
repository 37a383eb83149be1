"""``kmeans.fit: per_parent`` vs ``local`` on the same sample: inertia ratio and fit time.

Writes ``bench/kmeans.py``'s Zipf-sized Gaussian mixture as real embedding shards (fp16, as the
pipeline stores them), then runs ``fit_kmeans`` with both fits and the same config and seed. Both
fits see the same sample rows (the bottom-k by region-id priority), and ``sample_inertia`` is the
mean squared distance of those rows to their nearest leaf, so the ratio compares like with like.
Prints one JSON line per seed and a last line with the median ratio.

    python bench/kmeans_per_parent.py                     # the sizes recorded in BENCHMARKS.md
    python bench/kmeans_per_parent.py --n 200000 --levels 32,32 --processes 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from bench.kmeans import mixture
    from regionset.pipelines.config import load_config
    from regionset.pipelines.executors.factory import make_executor
    from regionset.pipelines.kmeans.fit import fit_kmeans
    from tests.label_data import write_region_shard

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--centres", type=int, default=200)
    ap.add_argument("--levels", default="16,16")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seeding", default="kmeans++")
    ap.add_argument("--processes", type=int, default=1)
    a = ap.parse_args()
    ratios = []
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            x = mixture(a.n, a.d, a.centres, seed)
            for s, idx in enumerate(np.array_split(np.arange(a.n), a.shards)):
                write_region_shard(out, s, idx, x[idx])
            row = {"seed": seed}
            for fit in ("local", "per_parent"):
                cfg = load_config(None, [f"output={out}", f"kmeans.levels=[{a.levels}]", f"kmeans.sample_size={a.n}",
                                         f"kmeans.seed={seed}", f"kmeans.seeding={a.seeding}", f"kmeans.fit={fit}",
                                         "kmeans.refit=true", f"executor.processes={a.processes}", "progress=false"])
                t0 = time.perf_counter()
                with make_executor(cfg.executor, cfg.progress) as ex:
                    got = fit_kmeans(out, cfg.kmeans, ex, list(range(a.shards)), progress=cfg.progress)
                row[fit] = {"inertia": got["inertia"], "leaves": got["leaves"], "s": round(time.perf_counter() - t0, 1)}
            row["ratio"] = round(row["per_parent"]["inertia"] / row["local"]["inertia"], 4)
            ratios.append(row["ratio"])
            print(json.dumps(row), flush=True)
    print(json.dumps({"n": a.n, "d": a.d, "centres": a.centres, "levels": a.levels, "seeding": a.seeding,
                      "median_inertia_ratio_per_parent_over_local": statistics.median(ratios)}))


if __name__ == "__main__":
    main()
