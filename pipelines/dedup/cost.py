"""What the ``group_duplicates`` step is expected to cost, for the build's ETA while it runs.

The step is one DuckDB grouping over every image's hash in the driver (``step.py``, ``group.py``).
Its rates were measured by ``bench/dedup.py`` on the 2-core test machine (BENCHMARKS.md "Dedup":
``halves`` linear in the hashes, ``bands`` growing ~quadratically past 1M), plus a fixed cost
(reading the shards' hashes files, writing ``duplicates/``) from the small build of BENCHMARKS.md
"Estimate accuracy". ``regionset estimate`` measures the step on the user's own machine instead.
"""

from __future__ import annotations

from typing import Any

# BENCHMARKS.md "Dedup" (2026-11-30, 2 cores, loaded): group seconds per hash.
BANDS_S_PER_HASH_AT_1M = 28.6 / 1e6  # bands, 1M hashes: 28.6 s (3M: 286.6 s, ~quadratic above 1M)
HALVES_S_PER_HASH = {1: 97.9 / 1e7, 2: 210.4 / 1e7}  # halves, 10M hashes: 97.9 s / 210.4 s (linear)
# BENCHMARKS.md "Estimate accuracy" (2026-12-07): the whole step took 1.0 s for 200 images.
FIXED_S = 1.0


def group_seconds(dedup: Any, images: float) -> tuple[float, str]:
    """Expected seconds of ``group_duplicates`` over ``images`` hashed images, and where the figure
    comes from.

    Args:
        dedup: the ``dedup`` section (``scheme``, ``auto_limit``, ``halvings``).
        images: images hashed by the build.
    """
    n = max(images, 0.0)
    scheme = dedup.scheme if dedup.scheme != "auto" else ("bands" if n <= dedup.auto_limit else "halves")
    if scheme == "bands":
        per = BANDS_S_PER_HASH_AT_1M * max(n / 1e6, 1.0)  # quadratic past 1M: ×10 time for ×3 hashes
        rate = f"bands {BANDS_S_PER_HASH_AT_1M * 1e6:.3g} µs/hash at 1M"
    else:
        per = HALVES_S_PER_HASH[dedup.halvings]
        rate = f"halves ({dedup.halvings} halvings) {per * 1e6:.3g} µs/hash"
    return FIXED_S + per * n, f"{FIXED_S:g} s + {rate}, measured on 2 cores (BENCHMARKS.md)"
