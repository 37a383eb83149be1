"""What one hierarchical k-means fit takes and gives (``FitParams``, ``FitResult``): shared by
``tree.py`` (the fit), ``refine.py`` (global refinement) and ``distributed.py`` (per parent)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ProgressFn = Callable[..., None]
"""``progress(phase, done, total, rows=0)``: called as the fit advances (see regionset.pipelines.core.progress)."""


@dataclass(frozen=True)
class FitParams:
    """How each k-means runs (a subset of KMeansConfig, kept free of pipeline types)."""

    niter: int = 20
    seed: int = 0
    spherical: bool = True
    max_points_per_centroid: int = 256
    allocate_by: str = "size"
    gpu: bool = False
    refine_iters: int = 2
    seeding: str = "kmeans++"
    backend: str = "faiss"
    """Who runs each k-means and nearest-centroid pass: ``faiss`` or ``torch`` (resolved, never ``auto``)."""
    device: str = "cpu"
    """The torch backend's device (``cpu`` or ``cuda``, resolved); unused by faiss (``gpu`` says)."""


@dataclass
class FitResult:
    """Centroids and parent links per level, plus degenerate-case counts."""

    centroids: list[np.ndarray] = field(default_factory=list)
    parents: list[np.ndarray] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
