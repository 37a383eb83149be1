"""What the ``group_duplicates`` step is expected to cost, for the build's ETA while it runs.

The step is one DuckDB query over every shard's hashes in the driver (``step.py``): linear in the
images. Its unit cost was measured by ``bench/estimate_accuracy.py`` on the 2-core test machine
(BENCHMARKS.md "Estimate accuracy": the step's wall over the build's images); ``regionset estimate``
measures it on the user's own machine instead (the sample's wall scaled by images).
"""

from __future__ import annotations

# BENCHMARKS.md "Estimate accuracy" (2026-12-07): 1.0 s for 200 images on 2 cores.
GROUP_SECONDS_PER_IMAGE = 0.005


def group_seconds(images: float) -> tuple[float, str]:
    """Expected seconds of ``group_duplicates`` over ``images`` images, and where the figure comes from.

    Args:
        images: input rows of the build.
    """
    return (GROUP_SECONDS_PER_IMAGE * max(images, 0.0),
            f"{GROUP_SECONDS_PER_IMAGE * 1000:.3g} ms/image measured on 2 cores (BENCHMARKS.md)")
