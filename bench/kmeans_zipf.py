"""The Zipf-mixture case of ``bench/kmeans.py``: K ≈ the number of true clusters.

Unit vectors drawn around ``centres`` random directions, cluster sizes ∝ 1/rank (Zipf) and a
different spread per cluster. Each method is scored by partition SSE (each point to the mean of
its leaf, after exact nearest-leaf assignment), NMI against the true clusters and wall time; the
reference is greedy k-means++ over **all** points followed by the same FAISS Lloyd iterations.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


def zipf_mixture(n: int, d: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) unit vectors and their true cluster ids; sizes ∝ 1/rank, spreads 0.15–0.6 (float32)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    w = 1.0 / np.arange(1, centres + 1)
    lab = rng.choice(centres, n, p=w / w.sum())
    spread = rng.uniform(0.15, 0.6, centres).astype(np.float32) / np.sqrt(d)
    x = c[lab] + rng.standard_normal((n, d), dtype=np.float32) * spread[lab, None]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), lab


def partition_sse(x: np.ndarray, ids: np.ndarray) -> float:
    """Σ over leaves of the squared distances of its points to their mean."""
    k = int(ids.max()) + 1
    counts = np.bincount(ids, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, ids, x.astype(np.float64))
    sq = float((x.astype(np.float64) ** 2).sum())
    nz = counts > 0
    return sq - float(((sums[nz] ** 2).sum(1) / counts[nz]).sum())


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean of the entropies)."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    n = len(a)
    joint = np.bincount(a * (b.max() + 1) + b).astype(np.float64)
    ja, jb = np.divmod(np.flatnonzero(joint), b.max() + 1)
    pj = joint[joint > 0] / n
    pa, pb = np.bincount(a) / n, np.bincount(b) / n
    mi = float((pj * np.log(pj / (pa[ja] * pb[jb]))).sum())
    ha, hb = -float((pa * np.log(pa)).sum()), -float((pb * np.log(pb)).sum())
    return 2 * mi / (ha + hb)


def run_zipf(n: int, d: int, centres: int, levels: tuple[int, int], seed: int, niter: int,
             seedings: list[str], reference: bool = True) -> list[dict]:
    """Fit every method on one Zipf mixture; return one row per method (reference first)."""
    import faiss

    from regionset.models.kmeans_index import nearest_centroids
    from regionset.pipelines.kmeans.params import FitParams
    from regionset.pipelines.kmeans.seeding import kmeanspp
    from regionset.pipelines.kmeans.tree import fit_hierarchy

    x, truth = zipf_mixture(n, d, centres, seed)
    k = levels[0] * levels[1]
    rows = []

    def score(name: str, c: np.ndarray, seconds: float) -> None:
        ids, _ = nearest_centroids(x, c, "numpy")
        rows.append({"method": name, "sse": partition_sse(x, ids), "nmi": nmi(truth, ids),
                     "seconds": seconds, "leaves": len(c)})

    if reference:
        t = time.perf_counter()
        init = kmeanspp(x, k, seed)
        km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=True, max_points_per_centroid=n,
                          verbose=False)
        km.train(x, init_centroids=init)
        score("greedy k-means++ (all points) + Lloyd", km.centroids, time.perf_counter() - t)
    t = time.perf_counter()
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=True, verbose=False)
    km.train(x)
    score("flat FAISS, random seeding", km.centroids, time.perf_counter() - t)
    base = FitParams(niter=niter, seed=seed, spherical=True)
    for s in seedings:
        t = time.perf_counter()
        res = fit_hierarchy(x, [levels[0], k], dataclasses.replace(base, seeding=s))
        score(f"regionset tree, seeding {s}", res.centroids[-1], time.perf_counter() - t)
    return rows


def print_zipf(rows: list[dict], header: str) -> None:
    """A markdown table of ``run_zipf`` rows, SSE relative to the first row."""
    ref = rows[0]
    print(f"\n{header}")
    print("method | leaves | partition SSE | SSE / first row | NMI | NMI - first row | wall s")
    for r in rows:
        print(f"{r['method']} | {r['leaves']} | {r['sse']:.1f} | {r['sse'] / ref['sse']:.3f} | {r['nmi']:.4f} | "
              f"{r['nmi'] - ref['nmi']:+.4f} | {r['seconds']:.1f}", flush=True)
