"""One k-means (Lloyd iterations) with torch: the ``kmeans.backend: torch`` replacement of ``faiss.Kmeans``.

It keeps the FAISS fit's semantics (so the tree, its sizes and its tests are the same for either
backend): at most ``max_points_per_centroid × k`` training points (a uniform subsample drawn from
``seed``), the given initial centroids (k-means++ seeds, ``regionset.pipelines.kmeans.seeding``) or
``k`` distinct sample points drawn from ``seed``, ``niter`` iterations of exact assignment then
means, centroids re-normalised in spherical mode, and a centroid left without a point moved beside
one of the largest clusters (pushed apart by a relative ±1/1024 on alternate coordinates) so the
next assignment splits that cluster.

Each iteration is one pass over the training points in blocks (``regionset.models.kmeans_torch``:
sized to the device's free memory): a block's scores against all centroids (one float32 matmul), its
argmin, and its rows added to their cluster's float32 sum (``index_add_``). The training points
stay on the device when they fit ``BLOCK_FRACTION`` of its free memory, else each block is copied
there as it is used. Deterministic under a seed on the CPU; on a CUDA device ``index_add_`` adds
with atomics, so a sum's last bits (and rarely a point's cluster) can differ between runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from regionset.models.kmeans_torch import BLOCK_FRACTION, block_rows, free_bytes, resolve_device

if TYPE_CHECKING:
    import torch

EPS = 1.0 / 1024
"""Relative push that separates a re-seeded centroid from the big one it was moved beside."""


def subsample(n: int, k: int, max_points_per_centroid: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row ids of the training subsample, or None when all ``n`` rows train."""
    limit = k * max_points_per_centroid
    return np.sort(rng.choice(n, limit, replace=False)) if n > limit else None


def plan(n: int, k: int, d: int, free: int) -> tuple[bool, int]:
    """(training points kept on the device, rows per block) for ``n`` × ``d`` points and ``k`` centroids.

    The centroids, their sums and the new centroids (3 × 4k(d + 1) bytes) are resident; the points
    stay on the device when they fit ``BLOCK_FRACTION`` of what is left (then they are resident
    too); a block is as many rows as ``block_rows`` allows in the rest (8 more bytes per row: its
    cluster id).

    Args:
        n: training points.
        k: centroids.
        d: the dimension.
        free: the device's free bytes (``regionset.models.kmeans_torch.free_bytes``).
    """
    resident = 12 * k * (d + 1)
    on_device = 4 * n * d <= (free - resident) * BLOCK_FRACTION
    return on_device, block_rows(k, d, free, row_bytes=8, resident=resident + (4 * n * d if on_device else 0))


def lloyd(x: np.ndarray, k: int, niter: int, seed: int, spherical: bool, max_points_per_centroid: int,
          init: np.ndarray | None = None, device: str = "cpu", free: int | None = None) -> np.ndarray:
    """``k`` centroids of ``x`` after ``niter`` Lloyd iterations (float32, (k, d)).

    Args:
        x: (n, d) float32 points, n > k (already L2-normalised in spherical mode).
        k: clusters.
        niter: iterations (each one assignment pass and one update).
        seed: draws the subsample and, without ``init``, the initial centroids.
        spherical: unit-norm centroids after every update.
        max_points_per_centroid: training points per centroid at most.
        init: (k, d) initial centroids, or None for ``k`` distinct training points.
        device: ``cpu`` or ``cuda[:N]`` (already resolved).
        free: bytes a block may use (default: the device's free memory now).
    """
    import torch

    device = resolve_device(device)  # a task on a worker without the driver's GPU fails here, in one line
    rng = np.random.default_rng(seed)
    rows = subsample(len(x), k, max_points_per_centroid, rng)
    xs = x if rows is None else x[rows]
    c0 = init if init is not None else xs[np.sort(rng.choice(len(xs), k, replace=False))]
    n, d = xs.shape
    on_device, step = plan(n, k, d, free if free is not None else free_bytes(device))
    with torch.no_grad():
        host = torch.from_numpy(np.ascontiguousarray(xs, np.float32))
        xt = host.to(device) if on_device else host
        c = torch.from_numpy(np.ascontiguousarray(c0, np.float32)).to(device)
        for _ in range(niter):
            sums = torch.zeros((k, d), dtype=torch.float32, device=device)
            counts = torch.zeros(k, dtype=torch.int64, device=device)
            cn = (c * c).sum(1)
            for lo in range(0, n, step):
                xb = xt[lo:lo + step].to(device, non_blocking=True)
                arg = torch.addmm(cn, xb, c.T, beta=1.0, alpha=-2.0).argmin(1)
                sums.index_add_(0, arg, xb)
                counts += torch.bincount(arg, minlength=k)
            c = _update(c, sums, counts, spherical)
        return c.cpu().numpy()


def _update(c: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor, spherical: bool) -> torch.Tensor:
    """Means of the non-empty clusters; every empty one moved beside one of the largest clusters."""
    import torch

    hit = counts > 0
    new = torch.where(hit[:, None], sums / counts.clamp_min(1)[:, None].to(sums.dtype), c)
    empty = torch.nonzero(~hit).flatten()
    if len(empty):
        big = torch.argsort(-counts, stable=True)[:len(empty)]
        big = big[counts[big] > 1]  # only a cluster of two or more points can be split
        empty = empty[:len(big)]
        sign = torch.ones(c.shape[1], device=c.device)
        sign[1::2] = -1.0
        src = new[big].clone()
        new[empty] = src * (1 + EPS * sign)
        new[big] = src * (1 - EPS * sign)
    if spherical:
        new = new / new.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return new
