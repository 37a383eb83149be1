"""Hierarchical vs flat FAISS k-means at equal leaf count, and streaming assignment at growing N.

Part 1 (same data, same process): fit time, exact-assignment throughput and inertia (mean squared
distance of every point to its nearest centroid) of ``regionset.pipelines.kmeans.tree`` against one
flat ``faiss.Kmeans``; plus, for reference, routing through the coarse cell (what the pipeline does
*not* do). Median of ``--runs`` runs (seeds 0..runs-1).
Each tree is fitted once per ``--seeding`` (random and k-means++ side by side, same flat fits).
Part 0 (``--zipf``): the Zipf mixture of ``bench/kmeans_zipf.py`` with K = the true cluster count:
partition SSE, NMI and time of the tree against greedy k-means++ (all points) + Lloyd.
Part 2: the assign stage streaming synthetic fp16 shards at N = ``--rss-n`` rows, each N in a fresh
child process: vectors/s and peak RSS (both should stay flat as N grows).

    python bench/kmeans.py                                   # the sizes recorded in BENCHMARKS.md
    python bench/kmeans.py --n 1000000 --k 16384 --d 64 --rss-n 1000000,4000000,16000000   # issue sizes
    python bench/kmeans.py --spherical --small-case 0 --rss-n 0             # cosine, the pipeline default
    python bench/kmeans.py --k 0 --rss-n 0 --runs 1           # only the Zipf case (K = true clusters)
    python bench/kmeans.py --gpu --n 10000000 --d 768 --k 65536 --small-case 0 --rss-n 0   # one GPU run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def mixture(n: int, d: int, centres: int, seed: int) -> np.ndarray:
    """Clustered data: Gaussian blobs with Zipf-like sizes and spreads (float32)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32) * 2.0
    w = 1.0 / np.arange(1, centres + 1) ** 0.8
    lab = rng.choice(centres, n, p=w / w.sum())
    spread = rng.uniform(0.3, 1.5, centres).astype(np.float32)
    return c[lab] + rng.standard_normal((n, d), dtype=np.float32) * spread[lab, None]


def split_levels(k: int) -> tuple[int, int]:
    """Two levels whose product is ``k`` (as square as possible)."""
    a = 2 ** round(math.log2(math.sqrt(k)))
    return a, k // a


def routed(x: np.ndarray, c0: np.ndarray, c1: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Squared distance when routing through the nearest coarse centroid first (reference only)."""
    from regionset.models.kmeans_index import nearest_centroids

    top, _ = nearest_centroids(x, c0, "numpy")
    out = np.empty(len(x), np.float32)
    for p in np.unique(top):
        rows = np.flatnonzero(top == p)
        kids = np.flatnonzero(parents == p)
        _, d = nearest_centroids(x[rows], c1[kids], "numpy")
        out[rows] = d
    return out


def one_run(x: np.ndarray, k: int, seed: int, args: argparse.Namespace, backend: str, seeding: str,
            flat: dict) -> dict:
    """Fit both on ``x``; return timings, throughputs and inertias (hierarchical before and after
    the global refinement, which is timed as part of its fit). ``flat`` caches the flat fit per seed."""
    import faiss

    from regionset.models.kmeans_index import nearest_centroids
    from regionset.pipelines.kmeans.params import FitParams
    from regionset.pipelines.kmeans.tree import fit_hierarchy, refine

    a, b = split_levels(k)
    niter, gpu = args.niter, args.gpu
    params = FitParams(niter=niter, seed=seed, spherical=args.spherical, gpu=gpu, refine_iters=0, seeding=seeding)
    t, c = time.perf_counter(), time.process_time()
    res = fit_hierarchy(x, [a, a * b], params)
    h_fit, h_cpu = time.perf_counter() - t, time.process_time() - c
    _, h0_d = nearest_centroids(x, res.centroids[-1], backend)
    t, c = time.perf_counter(), time.process_time()
    refine(x, res, dataclasses.replace(params, refine_iters=args.refine_iters))
    h_fit, h_cpu = h_fit + time.perf_counter() - t, h_cpu + time.process_time() - c
    if seed not in flat:
        t, c = time.perf_counter(), time.process_time()
        km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, gpu=gpu, spherical=args.spherical, verbose=False)
        km.train(x)
        flat[seed] = (km.centroids, time.perf_counter() - t, time.process_time() - c)
    f_centroids, f_fit, f_cpu = flat[seed]
    t = time.perf_counter()
    _, h_d = nearest_centroids(x, res.centroids[-1], backend)
    h_assign = len(x) / (time.perf_counter() - t)
    t = time.perf_counter()
    _, f_d = nearest_centroids(x, f_centroids, backend)
    f_assign = len(x) / (time.perf_counter() - t)
    r_d = routed(x, res.centroids[0], res.centroids[1], res.parents[1])
    return {"h_fit": h_fit, "f_fit": f_fit, "h_cpu": h_cpu, "f_cpu": f_cpu, "h_assign": h_assign, "f_assign": f_assign,
            "h_inertia": float(h_d.mean()), "h0_inertia": float(h0_d.mean()), "f_inertia": float(f_d.mean()), "routed_inertia": float(r_d.mean()),
            "leaves": len(res.centroids[-1])}


def compare(n: int, d: int, k: int, args: argparse.Namespace, backend: str) -> list[dict]:
    """One median row per tree seeding (``--seeding``), all against the same flat fits."""
    x = mixture(n, d, centres=max(k // 4, 8), seed=123)
    if args.spherical:
        from regionset.models.kmeans_index import l2_normalize

        x = l2_normalize(x)
    flat: dict = {}
    out = []
    for seeding in args.seeding.split(","):
        rows = [one_run(x, k, seed, args, backend, seeding, flat) for seed in range(args.runs)]
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        out.append({"n": n, "d": d, "k": k, "levels": split_levels(k), "seeding": seeding, **med})
    return out


_CHILD = """
import json, resource, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[5])
from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.executors.local import LocalExecutor
from regionset.stages.assign import AssignConfig, AssignStage
from tests.label_data import write_region_shard
out, n, d, per = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
shards = list(range((n + per - 1) // per))
for s in shards:
    idx = np.arange(s * per, min(n, (s + 1) * per))
    write_region_shard(out, s, idx, rng.standard_normal((len(idx), d), dtype=np.float32))
t = time.perf_counter()
rep = LocalExecutor(show_progress=False).run_stage(AssignStage(AssignConfig(kmeans_dir=sys.argv[6])), out, shards)
dt = time.perf_counter() - t
print(json.dumps({"rows": rep.rows_out, "shards": len(shards), "vps": rep.rows_out / dt,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def streaming(ns: list[int], d: int, k: int, per_shard: int) -> list[dict]:
    """The assign stage over synthetic fp16 shards at each N, in a fresh process each."""
    from regionset.models.kmeans_index import ClusterTree

    a, b = split_levels(k)
    rng = np.random.default_rng(1)
    c1 = rng.standard_normal((a * b, d)).astype(np.float32)
    c1 /= np.linalg.norm(c1, axis=1, keepdims=True)
    tree = ClusterTree([c1[::b].copy(), c1], [np.full(a, -1, np.int32), np.repeat(np.arange(a), b).astype(np.int32)],
                       True, {"sizes": [a, a * b], "spherical": True, "sources": ["object"]})
    out = []
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree.save(Path(tmp) / "kmeans")
        for n in ns:
            data = Path(tmp) / f"n{n}"
            res = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(n), str(d), str(per_shard),
                                  str(root), str(Path(tmp) / "kmeans")], capture_output=True, text=True, check=True)
            out.append({"n": n, **json.loads(res.stdout.strip().splitlines()[-1])})
            subprocess.run(["rm", "-rf", str(data)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--small-case", type=int, default=20_000, help="N of the d=512 case (0 skips it)")
    ap.add_argument("--small-k", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--refine-iters", type=int, default=2, help="global Lloyd iterations after the tree fit")
    ap.add_argument("--spherical", action="store_true", help="L2-normalised data, cosine k-means (the pipeline's default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gpu", action="store_true", help="faiss GPU k-means and GPU assignment")
    ap.add_argument("--seeding", default="random,kmeans++", help="tree seedings compared (comma-separated)")
    ap.add_argument("--zipf", type=int, default=200_000, help="N of the Zipf-mixture case, K = true clusters (0 skips)")
    ap.add_argument("--zipf-levels", default="15,20", help="tree of the Zipf case (its product = true clusters)")
    ap.add_argument("--rss-n", default="100000,400000,1600000", help="comma-separated N of part 2 (0 skips)")
    ap.add_argument("--rss-k", type=int, default=1024)
    ap.add_argument("--per-shard", type=int, default=50_000)
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    backend = "faiss" if args.gpu else "numpy"
    cases = [(args.n, args.d, args.k)] + ([(args.small_case, 512, args.small_k)] if args.small_case else [])
    print(f"faiss {faiss.__version__}, threads {args.threads}, gpu {args.gpu}, runs {args.runs} (median), "
          f"refine iterations {args.refine_iters}, spherical {args.spherical}")
    if args.zipf:
        from kmeans_zipf import print_zipf, run_zipf

        a, b = (int(v) for v in args.zipf_levels.split(","))
        for seed in range(args.runs):
            rows = run_zipf(args.zipf, 64, a * b, (a, b), seed, args.niter, args.seeding.split(","))
            print_zipf(rows, f"Zipf mixture: N={args.zipf}, d=64, {a * b} clusters, K={a}x{b}, seed {seed}")
        if args.k == 0:
            return
    hdr = ("N", "d", "K", "seeding", "levels", "leaves", "fit h s", "fit flat s", "fit ×", "cpu h s", "cpu flat s", "cpu ×",
           "assign h v/s", "assign flat v/s",
           "inertia h", "inertia flat", "h/flat", "unrefined/flat", "routed/flat")
    print(" | ".join(hdr))
    for n, d, k in cases:
        for r in compare(n, d, k, args, backend):
            print(" | ".join(str(v) for v in (
                r["n"], r["d"], r["k"], r["seeding"], "×".join(map(str, r["levels"])), int(r["leaves"]), f"{r['h_fit']:.1f}",
                f"{r['f_fit']:.1f}", f"{r['f_fit'] / r['h_fit']:.1f}", f"{r['h_cpu']:.1f}", f"{r['f_cpu']:.1f}",
                f"{r['f_cpu'] / r['h_cpu']:.1f}", f"{r['h_assign']:,.0f}", f"{r['f_assign']:,.0f}",
                f"{r['h_inertia']:.4f}", f"{r['f_inertia']:.4f}", f"{r['h_inertia'] / r['f_inertia']:.3f}",
                f"{r['h0_inertia'] / r['f_inertia']:.3f}",
                f"{r['routed_inertia'] / r['f_inertia']:.3f}")), flush=True)
    ns = [int(v) for v in args.rss_n.split(",") if int(v)]
    if ns:
        print(f"\nassign stage, streaming fp16 shards of {args.per_shard} rows, d={args.d}, K={args.rss_k}")
        print("N | shards | vectors/s | peak RSS MiB")
        for r in streaming(ns, args.d, args.rss_k, args.per_shard):
            print(f"{r['n']} | {r['shards']} | {r['vps']:,.0f} | {r['rss_mb']:.0f}", flush=True)


if __name__ == "__main__":
    main()
