"""How big the tree should be (``kmeans.levels: auto``) and when a fitted tree is degenerate.

The rule for ``auto``, from the number ``n`` of sampled regions the fit sees:

- **leaves** = ``n / per_leaf`` with ``per_leaf = clamp(sqrt(n), MIN_PER_LEAF, FULL_SCALE_PER_LEAF)``.
  ``FULL_SCALE_PER_LEAF`` = 2,400 is RICE's ratio (2.4B regions / 1M clusters), reached from
  n ≈ 5.8M on. Below it ``sqrt(n)`` leaves (the classic k ≈ √n rule) keep both the number of
  classes and their size growing with the data. ``MIN_PER_LEAF`` = 50 is the floor for small
  data (n < 2,500): a centroid averaged over fewer points is mostly noise, and FAISS itself warns
  under 39 training points per centroid.
- **levels**: one level under ``TWO_LEVELS_FROM`` = 100 leaves; from there two levels of about
  ``sqrt(leaves)`` each (``branching``), so both levels have at least ~10 clusters and ~10 children
  per parent: 600 regions → ``[12]``, 60,000 → ``[16, 15]``, 6M → ``[50, 50]``, 1M → ``[32, 31]``.

A tree that does not fit its data is flagged by ``tree_warnings`` (printed loudly, written to
``regionset.yaml``, shown first in the report and in ``regionset status``).
"""

from __future__ import annotations

import math
from typing import Any

FULL_SCALE_PER_LEAF = 2_400
MIN_PER_LEAF = 50
TWO_LEVELS_FROM = 100
WARNING_PREFIX = "k-means tree is degenerate"
MIN_MEDIAN_LEAF_REGIONS = 5
"""A fitted tree whose median leaf holds fewer sampled regions than this is flagged as degenerate."""


def auto_levels(n: int) -> tuple[int, ...]:
    """The ``branching`` levels of ``kmeans.levels: auto`` for ``n`` sampled regions (see module doc).

    Args:
        n: number of sampled regions (>= 0).
    """
    per_leaf = min(max(math.sqrt(n), MIN_PER_LEAF), FULL_SCALE_PER_LEAF)
    leaves = max(1, round(n / per_leaf))
    if leaves < TWO_LEVELS_FROM:
        return (leaves,)
    top = round(math.sqrt(leaves))
    return (top, round(leaves / top))


def auto_rule() -> str:
    """One line describing the auto rule (recorded in ``kmeans.json``)."""
    return (f"leaves = n / clamp(sqrt(n), {MIN_PER_LEAF}, {FULL_SCALE_PER_LEAF}); one level under "
            f"{TWO_LEVELS_FROM} leaves, else two of ~sqrt(leaves) (n = sampled regions)")


def tree_warnings(meta: dict[str, Any]) -> list[str]:
    """Why the fitted tree of ``kmeans.json`` is degenerate (empty list when it is not).

    Args:
        meta: the fit's metadata: ``requested`` and ``sizes`` per level, ``sample_rows``,
            ``median_leaf_regions``, ``empty_leaves_in_sample``.
    """
    sizes, requested, n = meta["sizes"], meta["requested"], meta["sample_rows"]
    why = []
    if sizes[-1] * 2 < requested[-1]:
        why.append(f"{sizes[-1]:,} leaves of the {requested[-1]:,} requested (cut by more than half)")
    if meta["median_leaf_regions"] < MIN_MEDIAN_LEAF_REGIONS:
        why.append(f"median {meta['median_leaf_regions']:g} sampled regions per leaf "
                   f"(below {MIN_MEDIAN_LEAF_REGIONS})")
    flat = [i for i in range(1, len(sizes)) if sizes[i] <= sizes[i - 1]]
    if flat:
        why.append("level " + ", ".join(map(str, flat)) + " has no more clusters than the level above")
    if meta["empty_leaves_in_sample"]:
        why.append(f"{meta['empty_leaves_in_sample']:,} leaves with no sampled region")
    if not why:
        return []
    return [f"{WARNING_PREFIX} for its {n:,} sampled regions: " + "; ".join(why)
            + f". The labels are not meaningful: use kmeans.levels: auto (here {list(auto_levels(n))}) "
            "or fewer clusters, or embed more regions."]
