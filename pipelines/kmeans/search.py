"""The nearest-centroid pass of a fit, on the fit's backend (``FitParams.backend``)."""

from __future__ import annotations

import numpy as np

from regionset.models.kmeans_index import Backend, nearest_centroids
from regionset.pipelines.kmeans.params import FitParams


def nearest(x: np.ndarray, centroids: np.ndarray, p: FitParams,
            faiss_backend: Backend = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, squared distances float32) of every row's exact nearest centroid.

    Args:
        x: (n, d) float32 rows.
        centroids: (k, d) float32 centroids.
        p: the fit's parameters: ``backend: torch`` searches with torch on ``p.device``.
        faiss_backend: the search of the ``faiss`` backend (``numpy``, or ``auto``: FAISS on the GPUs).
    """
    if p.backend == "torch":
        from regionset.models.kmeans_torch import nearest as torch_nearest

        return torch_nearest(x, centroids, p.device)
    return nearest_centroids(x, centroids, faiss_backend)
