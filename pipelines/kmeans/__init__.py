"""Hierarchical k-means: the ``fit_kmeans`` global step and what it is built from.

``fit.py`` is the step (config, sample, fit, write ``OUT/kmeans``), ``fit_choice.py`` what ``fit: auto`` runs, ``tree.py`` the hierarchical fit
and global refinement, ``seeding.py`` the k-means++ seeds, ``sizing.py`` ``levels: auto`` and the
degenerate-tree warning, ``sample.py`` the streaming uniform sample, ``catalog.py`` the catalog's
cluster and vocabulary tables.
"""

from regionset.pipelines.kmeans.fit import KMeansConfig, fit_kmeans

__all__ = ["KMeansConfig", "fit_kmeans"]
