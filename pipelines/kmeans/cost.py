"""What a k-means fit and its assignment cost: docs/capacity.md's multiply-add model.

Shared by ``regionset estimate`` (``pipelines/tools/estimate/projection.py``, before a build) and the
build's ETA (``fit_seconds``: the ``fit_kmeans`` step's expected seconds while the build runs, in the
progress line and ``regionset status --watch``). Pure arithmetic: no I/O, no clock.
"""

from __future__ import annotations

import math
from typing import Any

from regionset.pipelines.kmeans.sizing import auto_levels

# docs/capacity.md "Compute per stage": 2.19e10 multiply-adds/s on 2 threads, 1.1e10 per core
# (measured at d = 64, K = 16,384; assumed the same at other d).
KMEANS_MADDS_PER_CORE_S = 1.1e10
# The step's fixed cost (reading the sample, writing the tree): 0.3-0.6 s on the 2-core test machine
# for 8-200 images (bench/estimate_accuracy.py, BENCHMARKS.md "Estimate accuracy").
FIT_FIXED_S = 0.5


def kmeans_madds(levels: list[int], sample: int, regions: float, dim: int, niter: int, refine: int,
                 beam: int) -> dict[str, float]:
    """docs/capacity.md's multiply-add counts for a hierarchical fit and its assignment.

    Args:
        levels: clusters per level (branching), e.g. ``[1000, 1000]``.
        sample: points the fit samples (capped at the regions there are).
        regions: regions to assign.
        dim: embedding dimension.
        niter: Lloyd iterations per fit.
        refine: exact refinement passes over the sample.
        beam: beam width of the assignment (0 = exact).
    """
    leaves = math.prod(levels)
    n = min(float(sample), regions)
    fits = n * levels[-1] * dim * niter if len(levels) > 1 else 0.0  # per-parent fits: each point once
    level0 = min(n, 256.0 * levels[0]) * levels[0] * dim * niter
    refinement = (refine + 1) * n * leaves * dim  # refine passes + one stats pass, exact
    exact = regions * leaves * dim
    beamed = regions * (levels[0] + beam * (leaves // levels[0])) * dim if beam and len(levels) > 1 else exact
    return {"fit": level0 + fits + refinement, "assign": min(beamed, exact), "leaves": float(leaves)}


def fit_levels(levels: Any, sample: int) -> list[int]:
    """The configured ``kmeans.levels``, or what ``auto`` picks for ``sample`` sampled regions.

    Args:
        levels: ``"auto"`` or clusters per level.
        sample: regions the fit samples.
    """
    return list(levels) if levels != "auto" else list(auto_levels(sample))


def fit_seconds(kmeans: Any, dim: int, regions: float, cores: int) -> tuple[float, str]:
    """Expected seconds of the ``fit_kmeans`` step over ``regions`` embedded regions on ``cores``
    cores: ``FIT_FIXED_S`` + the model's multiply-adds at ``KMEANS_MADDS_PER_CORE_S`` per core.
    Returns (seconds, where the figure comes from).

    Args:
        kmeans: the ``kmeans`` section (``levels``, ``sample_size``, ``niter``, ``refine_iters``).
        dim: embedding dimension.
        regions: regions the build embeds.
        cores: CPU cores of the driver.
    """
    n = int(min(kmeans.sample_size, max(regions, 0.0)))
    if n <= 0:
        return FIT_FIXED_S, "k-means model: no regions (fixed cost only)"
    levels = fit_levels(kmeans.levels, n)
    madds = kmeans_madds(levels, n, regions, dim, kmeans.niter, kmeans.refine_iters, 0)["fit"]
    seconds = FIT_FIXED_S + madds / KMEANS_MADDS_PER_CORE_S / max(cores, 1)
    return seconds, (f"{FIT_FIXED_S:g} s + docs/capacity.md k-means model: {madds:.3g} multiply-adds at "
                     f"{KMEANS_MADDS_PER_CORE_S:.2g}/core-s on {max(cores, 1)} cores")
