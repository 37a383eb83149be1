"""Hierarchical k-means: the ``fit_kmeans`` global step (``fit.py``) and what it is built from.

``config.py`` the ``kmeans`` section and its checks, ``params.py`` what one fit takes and gives,
``fit_choice.py`` what ``fit: auto`` runs, ``tree.py`` the hierarchical fit, ``refine.py`` the global
refinement, ``seeding.py`` the k-means++ seeds, ``sizing.py`` ``levels: auto`` and the
degenerate-tree warning, ``sample.py`` the streaming uniform sample, ``distributed.py`` and
``partition.py`` ``fit: per_parent``. Re-exports nothing: import from the module that defines a name.
"""
