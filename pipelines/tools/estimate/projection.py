"""The arithmetic of ``regionset estimate``: measured unit costs -> a projection for N images.

Pure: no I/O, no clock. Input is the dict ``measure.measure_sample`` records (``UNIT_COSTS`` keys
below), output a dict whose every figure carries ``from`` (the measured unit it was scaled from)
and ``extrapolated`` (True when the unit is applied far outside what was measured: more than
``EXTRAPOLATION_FACTOR`` x the sample, or on another worker count than measured). The k-means fit
and assign follow docs/capacity.md's multiply-add model (``pipelines/kmeans/cost.py``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from regionset.pipelines.dedup.cost import group_seconds
from regionset.pipelines.kmeans.cost import KMEANS_MADDS_PER_CORE_S, fit_levels, kmeans_madds

EXTRAPOLATION_FACTOR = 10.0
# Requests a shard stage makes on an object store per shard: GET each input, PUT the shard, PUT its
# marker (pipelines/core/shard_run.py); one LIST page per 1,000 markers when planning.
PUTS_PER_SHARD = 2
LIST_PAGE = 1000


def _units_at(stage: dict[str, Any], sample_images: int, images: int) -> float:
    """The stage's units (its input rows) for ``images`` images, at the sample's units per image."""
    return stage["units"] / max(sample_images, 1) * images


def _rate(rates: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return (rates or {}).get(name)


def project_stage(name: str, stage: dict[str, Any], costs: dict[str, Any], images: int, workers: int,
                  gpus: int, rates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wall, CPU and GPU seconds of one per-shard stage for ``images`` images.

    Args:
        name: the stage's name.
        stage: its measured entry (``units``, ``unit``, ``wall_s``, ``cpu_s``, ``gpu_s``, ``setup_s``).
        costs: the whole measurement (``sample_images``, ``cores``).
        images: images to project for.
        workers: CPU cores of the target cluster.
        gpus: GPUs of the target cluster.
        rates: optional ``{stage: {"units_per_s": r, "gpu": bool}}`` measured elsewhere (``--rates``).
    """
    units = _units_at(stage, costs["sample_images"], images)
    per = max(stage["units"], 1)
    cores = max(costs["cores"], 1)
    unit = stage["unit"]
    scale = units / per
    extrapolated = scale > EXTRAPOLATION_FACTOR or workers != cores
    cpu_s = stage["cpu_s"] / per * units
    given = _rate(rates, name)
    if given is not None:
        on_gpu = bool(given.get("gpu", False)) and gpus > 0
        par = gpus if on_gpu else workers
        wall = units / float(given["units_per_s"]) / max(par, 1)
        return {"units": round(units), "unit": unit, "wall_s": wall + stage.get("setup_s", 0.0),
                "cpu_s": cpu_s if not on_gpu else 0.0, "gpu_s": wall * par if on_gpu else 0.0,
                "from": f"--rates: {given['units_per_s']} {unit}s/s per {'GPU' if on_gpu else 'core'}",
                "extrapolated": extrapolated}
    gpu_per_unit = stage.get("gpu_s", 0.0) / per
    if gpu_per_unit > 0 and gpus > 0:  # measured on a GPU here: scale by the GPU count
        wall = units * gpu_per_unit / gpus
        src = f"{gpu_per_unit:.4g} GPU-s/{unit} measured on 1 GPU"
    else:  # CPU: the sample ran with all ``cores`` of this machine; assume linear in cores
        wall = units * stage["wall_s"] / per * cores / workers
        src = f"{stage['wall_s'] / per:.4g} s/{unit} wall on {cores} cores, {stage['cpu_s'] / per:.4g} CPU-s/{unit}"
    return {"units": round(units), "unit": unit, "wall_s": wall + stage.get("setup_s", 0.0), "cpu_s": cpu_s,
            "gpu_s": units * gpu_per_unit, "from": src, "extrapolated": extrapolated}


def project_kmeans(stage: dict[str, Any], costs: dict[str, Any], regions: float, workers: int) -> dict[str, Any]:
    """The fit_kmeans step at scale: the sample's measured wall (fixed costs: reading, writing the
    tree) plus the multiply-add model of docs/capacity.md on ``workers`` cores.

    Args:
        stage: the step's measured entry.
        costs: the whole measurement (its ``kmeans`` entry: levels, sample_size, dim, niter,
            refine_iters, search, beam, beam_min_leaves).
        regions: regions embedded in the projected build.
        workers: CPU cores of the target.
    """
    k = costs["kmeans"]
    n = int(min(k["sample_size"], regions))
    levels = fit_levels(k["levels"], n)
    leaves = math.prod(levels)
    beam = k["beam"] if k["search"] == "beam" or (k["search"] == "auto" and leaves >= k["beam_min_leaves"]) else 0
    m = kmeans_madds(levels, n, regions, k["dim"], k["niter"], k["refine_iters"], beam)
    cpu = m["fit"] / KMEANS_MADDS_PER_CORE_S
    driver, mode = kmeans_driver_bytes(k, n, levels)
    return {"units": n, "unit": "sampled region", "wall_s": stage["wall_s"] + cpu / max(workers, 1),
            "cpu_s": stage["cpu_s"] + cpu, "gpu_s": 0.0, "madds": m["fit"], "assign_madds": m["assign"],
            "levels": levels, "beam": beam, "fit": mode, "driver_bytes": driver,
            "from": f"docs/capacity.md k-means model: {m['fit']:.3g} multiply-adds at "
                    f"{KMEANS_MADDS_PER_CORE_S:.2g}/core-s + the sample's {stage['wall_s']:.3g} s",
            "extrapolated": True}


def kmeans_driver_bytes(k: dict[str, Any], n: int, levels: list[int]) -> tuple[float, str]:
    """The fit's driver memory by docs/capacity.md "Memory": ``local`` (what ``fit: auto`` picks
    while the sample's float32 fits ``local_max_mib``) holds ~1.25 x the sample; ``per_parent`` the
    level-0 sample, the leaves and their float64 sums. Returns (bytes, the fit it assumed)."""
    d, leaves = k["dim"], math.prod(levels)
    sample_bytes = n * d * 4
    mode = k.get("fit", "auto")
    if mode == "auto":
        mode = "local" if sample_bytes <= k.get("local_max_mib", 2048.0) * 1024 * 1024 else "per_parent"
    if mode == "local":
        return 1.25 * sample_bytes, mode
    level0 = min(n, 256 * levels[0]) * d * 4
    return level0 + leaves * d * (4 + 8), mode


def project_global(name: str, stage: dict[str, Any], costs: dict[str, Any], images: int,
                   workers: int) -> dict[str, Any]:
    """A global step other than fit_kmeans: its sample wall scaled by images, on one driver."""
    scale = images / max(costs["sample_images"], 1)
    per = stage["wall_s"] / max(costs["sample_images"], 1)
    return {"units": images, "unit": "image", "wall_s": stage["wall_s"] * scale, "cpu_s": stage["cpu_s"] * scale,
            "gpu_s": 0.0, "from": f"{per:.4g} s/image (global step, one process)",
            "extrapolated": scale > EXTRAPOLATION_FACTOR}


def project_group(stage: dict[str, Any], costs: dict[str, Any], images: int) -> dict[str, Any]:
    """The group_duplicates step at scale: the sample's measured wall (at sample sizes all fixed
    costs: reading the hashes files, writing ``duplicates/``) plus the grouping's measured rate for
    the images beyond the sample's (``pipelines/dedup/cost.py``, the scheme ``dedup`` resolves to at
    each size). The rate was measured with DuckDB's 2 threads busy: its CPU seconds count twice.

    Args:
        stage: the step's measured entry.
        costs: the whole measurement (its ``dedup`` entry: scheme, auto_limit, halvings).
        images: images of the projected build.
    """
    dedup = SimpleNamespace(**costs["dedup"])
    extra = max(group_seconds(dedup, images)[0] - group_seconds(dedup, costs["sample_images"])[0], 0.0)
    source = group_seconds(dedup, images)[1]
    return {"units": images, "unit": "image", "wall_s": stage["wall_s"] + extra, "cpu_s": stage["cpu_s"] + 2 * extra,
            "gpu_s": 0.0, "from": f"the sample's {stage['wall_s']:.3g} s + the grouping rate ({source})",
            "extrapolated": images / max(costs["sample_images"], 1) > EXTRAPOLATION_FACTOR}


def project(costs: dict[str, Any], images: int, workers: int | None = None, gpus: int = 0,
            rates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Project a build of ``images`` images on ``workers`` cores and ``gpus`` GPUs from unit costs.

    Args:
        costs: what ``measure_sample`` recorded.
        images: images (input URLs) of the build to project.
        workers: CPU cores of the target (default: the cores the sample ran on).
        gpus: GPUs of the target.
        rates: per-stage rates measured elsewhere (``--rates FILE``).
    """
    workers = workers or costs["cores"]
    stages: dict[str, dict[str, Any]] = {}
    for name, st in costs["stages"].items():
        if st["kind"] == "shard":
            stages[name] = project_stage(name, st, costs, images, workers, gpus, rates)
    regions = costs.get("regions_per_image", 0.0) * images  # embedded regions, at the sample's rate
    for name, st in costs["stages"].items():
        if st["kind"] == "global":
            if name == "fit_kmeans" and costs.get("kmeans"):
                stages[name] = project_kmeans(st, costs, regions, workers)
            elif name == "group_duplicates" and costs.get("dedup"):
                stages[name] = project_group(st, costs, images)
            else:
                stages[name] = project_global(name, st, costs, images, workers)
    ordered = {n: stages[n] for n in costs["stages"]}
    nbytes, files = project_tables(costs, images)
    shards = math.ceil(images / costs["shard_size"])
    wall = sum(s["wall_s"] for s in ordered.values())
    return {
        "images": images, "workers": workers, "gpus": gpus, "sample_images": costs["sample_images"],
        "wall_s": wall, "stages": ordered,
        "core_hours": sum(s["cpu_s"] for s in ordered.values()) / 3600,
        "reserved_core_hours": wall * workers / 3600,
        "gpu_hours": sum(s["gpu_s"] for s in ordered.values()) / 3600,
        "bytes": nbytes, "bytes_total": sum(nbytes.values()),
        "shards": shards, "files": files, "requests": project_requests(costs, shards),
        "memory_mib": dict(costs.get("peak_rss_mib", {})),
        "regions_per_image": regions / images if images else 0.0,
    }


def project_tables(costs: dict[str, Any], images: int) -> tuple[dict[str, float], int]:
    """Bytes per table for ``images`` images (the sample's bytes per row x projected rows) and the
    file count (one file per shard per table; globals' files as measured)."""
    shards = math.ceil(images / costs["shard_size"])
    scale = images / max(costs["sample_images"], 1)
    nbytes, files = {}, 0
    for table, t in costs["tables"].items():
        if t.get("per_shard", True):
            nbytes[table] = t["bytes"] * scale
            files += shards
        else:  # a global step's files (k-means tree): not proportional to images
            nbytes[table] = float(t["bytes"])
            files += t.get("files", 1)
    return nbytes, files


def project_requests(costs: dict[str, Any], shards: int) -> dict[str, int]:
    """Object-store requests of the shard stages: per shard one GET per input, one PUT for the shard
    and one for its marker; one LIST page per 1,000 markers per stage when planning."""
    gets = puts = lists = 0
    for st in costs["stages"].values():
        if st["kind"] != "shard":
            continue
        gets += shards * len(st.get("inputs", ()))
        puts += shards * PUTS_PER_SHARD
        lists += math.ceil(shards / LIST_PAGE)
    return {"GET": gets, "PUT": puts, "LIST": lists}
