"""Driver memory of ``kmeans.fit: per_parent`` by phase (docs/kmeans-labels.md "Per-parent fit").

Writes a Gaussian mixture as real ``embeddings`` shards (fp16, ``tests/label_data.py``), then fits
it in a fresh interpreter per run on the in-process executor (so the driver also runs the parent
fits and the refinement maps, the worst case) and prints, per phase, VmRSS after it and VmHWM during
it (``/proc/self/status``; VmHWM is reset through ``/proc/self/clear_refs`` between phases), as MiB
above the baseline taken after the imports and one warm-up read of a shard. The last line is JSON:
per shard count, the median peak growth and what the fit read (level-0 sample, largest parent).

    python bench/kmeans_driver_memory.py --shards 16 32 --runs 3
    python bench/kmeans_driver_memory.py --root /path/to/other/checkout   # the same runs on other code
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import ctypes, json, sys, time
from pathlib import Path
import numpy as np
import pyarrow as pa
import faiss  # noqa: F401
import regionset.pipelines.kmeans.distributed as dist
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_kmeans
from regionset.pipelines.kmeans.sample import iter_embeddings, row_priority
out, shards, levels, fit = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
np.zeros((256, 256)) @ np.zeros((256, 256))
for ids, _ in iter_embeddings(out, [0], ("object",)):
    row_priority(ids, 0)
def kib(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0])
phases, held = {}, {"level0": 0, "parent": 0}
def mark(name):  # RSS after the phase, its peak (VmHWM since the last mark); repeated phases: the max
    rss, hwm = (kib("VmRSS") - base) / 1024, (kib("VmHWM") - base) / 1024
    phases[name] = [rss, max(hwm, phases.get(name, [0, hwm])[1])]
    open("/proc/self/clear_refs", "w").write("5")
def phase(name, f, keep=None):
    def g(*a, **k):
        r = f(*a, **k)
        if keep:
            held[keep] = max(held[keep], (r[0] if isinstance(r, tuple) else r).nbytes)
        if name:
            mark(name)
        return r
    return g
dist.thresholds = phase("priority passes", dist.thresholds)
dist.read_sample = phase("read level-0 sample", dist.read_sample, "level0")
dist._children = phase("fit level 0 + children", dist._children)
dist.partition = phase("partition pass", dist.partition)
dist.parent_points = phase("", dist.parent_points, "parent")  # sizes only: no mark inside a task
dist._assemble = phase("assemble", dist._assemble)
run_calls = LocalExecutor.run_calls
def calls(self, fn, jobs):
    return phase({"fit_parent": "parent fits", "refine_map": "refinement map-reduce"}[fn.__name__],
                 run_calls)(self, fn, jobs)
LocalExecutor.run_calls = calls
ctypes.CDLL("libc.so.6").malloc_trim(0)  # the baseline: the warm-up's freed memory given back
pa.default_memory_pool().release_unused()
open("/proc/self/clear_refs", "w").write("5")
base = kib("VmRSS")
t, cpu = time.perf_counter(), time.process_time()
km = KMeansConfig(levels=tuple(levels), sample_size=10**6, niter=4, refine_iters=1, fit=fit,
                  max_points_per_centroid=64, refit=True)
fit_kmeans(out, km, LocalExecutor(1, show_progress=False), list(range(shards)))
fit_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
mark("end")
peak = max(p[1] for p in phases.values())
print(json.dumps({"phases": [[k, *v] for k, v in phases.items()], "peak_mib": peak, "fit_s": round(fit_s, 2), "cpu_s": round(cpu_s, 2),
                  **{k: v / 2**20 for k, v in held.items()}}))
"""


def run(root: Path, data: Path, shards: int, levels: list[int], fit: str) -> dict:
    """One fit in a fresh interpreter on the code under ``root``; its phases and peak."""
    r = subprocess.run([sys.executable, "-c", CHILD, str(data), str(shards), json.dumps(levels), fit],
                       capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--per-shard", type=int, default=7_500)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--levels", type=int, nargs="+", default=[16, 4])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fit", choices=["per_parent", "local"], default="per_parent")
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code is measured")
    ap.add_argument("--data", type=Path, help="reuse (or write) the shards here")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.label_data import write_mixture

    data = args.data or Path(tempfile.mkdtemp(prefix="kmeans-mem-"))
    if not any(data.rglob("*.parquet")):
        write_mixture(data, max(args.shards), args.per_shard, d=args.dim, k=64)
    summary = {}
    for shards in args.shards:
        got = [run(args.root, data, shards, args.levels, args.fit) for _ in range(args.runs)]
        for name, rss, hwm in got[-1]["phases"]:
            print(f"{shards:3d} shards  {name:22s} RSS +{rss:6.1f}  peak +{hwm:6.1f} MiB")
        summary[shards] = {"peak_mib": [round(g["peak_mib"], 1) for g in got],
                           "median_peak_mib": round(statistics.median(g["peak_mib"] for g in got), 1),
                           "median_fit_s": statistics.median(g["fit_s"] for g in got),
                           "median_cpu_s": statistics.median(g["cpu_s"] for g in got),
                           "level0_mib": round(got[-1]["level0"], 2), "largest_parent_mib": round(got[-1]["parent"], 2),
                           "shard_mib": round(args.per_shard * args.dim * 4 / 2**20, 2)}
    print(json.dumps({"fit": args.fit, "root": str(args.root), "dim": args.dim, "per_shard": args.per_shard,
                      "levels": args.levels, "shards": summary}))


if __name__ == "__main__":
    main()
