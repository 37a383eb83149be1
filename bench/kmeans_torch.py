"""k-means ``backend: torch`` against ``backend: faiss``: tree fit seconds, exact-assignment rows/s and
inertia on the same clustered data (Gaussian blobs, Zipf-like sizes and spreads, K/4 blobs,
L2-normalised: the pipeline's spherical default), median of ``--runs`` runs (seeds 0..runs-1).

On the CPU (``--device cpu``) both backends fit the same rows; the ratio column is torch / faiss.
On a GPU (``--device cuda``) the torch backend fits every ``--n`` on the GPU, then a CPU run of a
smaller sample (``--cpu-n`` rows, K scaled to keep the points per leaf; labelled ``CPU sample``)
with faiss, next to torch on the GPU for that same sample. ``--zipf N`` adds the quality check of
bench/kmeans_zipf.py (K = the true cluster count): partition SSE and NMI of both backends.

    python bench/kmeans_torch.py --device cpu --n 100000 --k 1024 --runs 3 --zipf 100000   # BENCHMARKS.md
    python bench/kmeans_torch.py --device cuda --n 1000000,10000000 --k 65536 --runs 1      # bench/gpu/run.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _data(n: int, d: int, k: int, seed: int) -> np.ndarray:
    from kmeans import mixture

    from regionset.models.kmeans_index import l2_normalize

    return l2_normalize(mixture(n, d, max(1, k // 4), seed)).astype(np.float32)


def _levels(k: int) -> list[int]:
    from kmeans import split_levels

    a, b = split_levels(k)
    return [a, a * b]


def _search(x: np.ndarray, c: np.ndarray, backend: str, device: str) -> tuple[np.ndarray, float]:
    """(squared distances, seconds) of the exact nearest-leaf pass of ``backend``."""
    from regionset.models.kmeans_index import nearest_centroids
    from regionset.models.kmeans_torch import nearest

    t = time.perf_counter()
    _, dist = nearest(x, c, device) if backend == "torch" else nearest_centroids(x, c, "numpy")
    return dist, time.perf_counter() - t


def one(x: np.ndarray, k: int, backend: str, device: str, args: argparse.Namespace, seed: int) -> dict:
    """Fit one tree of ``k`` leaves on ``x``; its fit seconds, assign rows/s and inertia."""
    from regionset.pipelines.kmeans.params import FitParams
    from regionset.pipelines.kmeans.tree import fit_hierarchy

    p = FitParams(niter=args.niter, seed=seed, spherical=True, refine_iters=args.refine, seeding=args.seeding,
                  backend=backend, device=device)
    t = time.perf_counter()
    res = fit_hierarchy(x, _levels(k), p)
    fit_s = time.perf_counter() - t
    dist, assign_s = _search(x, res.centroids[-1], backend, device)
    return {"fit_s": fit_s, "rows_per_s": len(x) / assign_s, "inertia": float(dist.mean(dtype=np.float64)),
            "leaves": len(res.centroids[-1])}


def median_row(label: str, x: np.ndarray, k: int, backend: str, device: str, args: argparse.Namespace) -> dict:
    runs = [one(x, k, backend, device, args, seed) for seed in range(args.runs)]
    row = {"label": label, "backend": backend, "device": device, "rows": len(x), "d": x.shape[1],
           "leaves": runs[0]["leaves"], **{key: statistics.median(r[key] for r in runs)
                                          for key in ("fit_s", "rows_per_s", "inertia")}}
    print(f"| {label} | {backend} | {device} | {row['rows']:,} × {row['d']} | {row['leaves']:,} | "
          f"{row['fit_s']:.2f} | {row['rows_per_s']:,.0f} | {row['inertia']:.5f} |", flush=True)
    return row


def zipf_quality(n: int, args: argparse.Namespace) -> None:
    """Partition SSE and NMI of both backends on the Zipf mixture, K = the true cluster count."""
    from kmeans_zipf import nmi, partition_sse, zipf_mixture

    from regionset.models.kmeans_index import nearest_centroids
    from regionset.pipelines.kmeans.params import FitParams
    from regionset.pipelines.kmeans.tree import fit_hierarchy

    print(f"\nZipf mixture: N={n:,}, d=64, 300 clusters, K=15x20, seeds 0..{args.runs - 1} (device cpu)")
    print("seed | faiss SSE | torch SSE | torch / faiss | faiss NMI | torch NMI | NMI diff")
    ratios, diffs = [], []
    for seed in range(args.runs):
        x, truth = zipf_mixture(n, 64, 300, seed)
        got = {}
        for b in ("faiss", "torch"):
            p = dataclasses.replace(FitParams(niter=args.niter, seed=seed, spherical=True), backend=b)
            ids, _ = nearest_centroids(x, fit_hierarchy(x, [15, 300], p).centroids[-1], "numpy")
            got[b] = (partition_sse(x, ids), nmi(truth, ids))
        ratios.append(got["torch"][0] / got["faiss"][0])
        diffs.append(got["torch"][1] - got["faiss"][1])
        print(f"{seed} | {got['faiss'][0]:.1f} | {got['torch'][0]:.1f} | {ratios[-1]:.4f} | {got['faiss'][1]:.4f} | "
              f"{got['torch'][1]:.4f} | {diffs[-1]:+.4f}", flush=True)
    print(f"median | | | {statistics.median(ratios):.4f} | | | {statistics.median(diffs):+.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: the torch backend on the GPU")
    ap.add_argument("--n", default="100000", help="rows, comma-separated")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=1024, help="leaves (two levels, as square as possible)")
    ap.add_argument("--runs", type=int, default=3, help="runs per row (median), seeds 0..runs-1")
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--refine", type=int, default=2, help="kmeans.refine_iters")
    ap.add_argument("--seeding", default="kmeans++", help="kmeans++ (numpy, on the CPU) or random")
    ap.add_argument("--cpu-n", type=int, default=200_000, help="GPU runs: rows of the labelled CPU sample (0: none)")
    ap.add_argument("--zipf", type=int, default=0, help="N of the Zipf quality check (0 skips)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of faiss and torch (0: their default)")
    args = ap.parse_args()

    import torch

    try:  # the GPU machine may have no faiss at all: then the CPU sample runs on torch's CPU path
        import faiss
    except ImportError:
        faiss = None
    if args.threads:
        torch.set_num_threads(args.threads)
        if faiss is not None:
            faiss.omp_set_num_threads(args.threads)
    dev = "cuda" if args.device.startswith("cuda") else "cpu"
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/kmeans_torch.py: --device cuda but torch sees no CUDA device")
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    cpu_backend = "faiss" if faiss is not None else "torch"
    print(f"torch {torch.__version__} ({name}), faiss {faiss.__version__ if faiss else 'not installed'}, threads "
          f"torch {torch.get_num_threads()} faiss {faiss.omp_get_max_threads() if faiss else '-'}, seeding "
          f"{args.seeding}, niter {args.niter}, refine {args.refine}, runs {args.runs} (median)")
    print("| run | backend | device | rows × d | leaves | fit s | assign rows/s | inertia |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(v) for v in args.n.split(",") if int(v)):
        x = _data(n, args.d, args.k, 0)
        if dev == "cpu" and faiss is None:
            sys.exit("bench/kmeans_torch.py: --device cpu compares with faiss, which is not installed")
        if dev == "cpu":
            f = median_row("same data", x, args.k, "faiss", "cpu", args)
            t = median_row("same data", x, args.k, "torch", "cpu", args)
            print(f"ratio torch / faiss: fit {t['fit_s'] / f['fit_s']:.2f}×, assign rows/s "
                  f"{t['rows_per_s'] / f['rows_per_s']:.2f}×, inertia {t['inertia'] / f['inertia']:.4f}")
            continue
        median_row("GPU", x, args.k, "torch", dev, args)
        if args.cpu_n and args.cpu_n < n:
            xs, ks = x[:args.cpu_n], max(4, args.k * args.cpu_n // n)
            median_row(f"CPU sample ({args.cpu_n:,} rows)", xs, ks, cpu_backend, "cpu", args)
            median_row(f"CPU sample ({args.cpu_n:,} rows)", xs, ks, "torch", dev, args)
        del x
    if args.zipf:
        zipf_quality(args.zipf, args)


if __name__ == "__main__":
    main()
