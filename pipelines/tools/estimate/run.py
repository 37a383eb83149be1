"""``regionset estimate CONFIG --images N``: measure a sample, project, print a table (and JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from regionset.common.typed_config import ConfigError
from regionset.pipelines.config import load_config
from regionset.pipelines.core.progress import out_console, print_table
from regionset.pipelines.tools.estimate.measure import measure_sample
from regionset.pipelines.tools.estimate.projection import project

MIB = 1024 * 1024


def load_rates(path: str | None) -> dict[str, Any] | None:
    """``--rates FILE``: YAML/JSON ``{stage: {units_per_s: R, gpu: true|false}}`` measured elsewhere
    (e.g. embed crops/s per GPU); a missing rate or a non-positive one is a ConfigError naming it."""
    if path is None:
        return None
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--rates: cannot read {path}: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"--rates: {path} must map stage names to {{units_per_s: R, gpu: bool}}")
    for name, r in doc.items():
        if not isinstance(r, dict) or not isinstance(r.get("units_per_s"), int | float) or r["units_per_s"] <= 0:
            raise ConfigError(f"--rates: {name}.units_per_s must be a positive number")
    return doc


def human_seconds(s: float) -> str:
    """``93 s``, ``12.5 min``, ``3.2 h``, ``4.1 d``."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def human_bytes(b: float) -> str:
    """``812 KB``, ``3.7 TB`` (powers of 1000, as in docs/capacity.md)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= scale:
            return f"{b / scale:.1f} {unit}"
    return f"{b:.0f} B"


def print_estimate(costs: dict[str, Any], proj: dict[str, Any], stderr: bool = False) -> None:
    """The projection as tables: per step, per table, totals; ⚠ marks extrapolated figures.

    Args:
        costs: the measured unit costs.
        proj: ``project(costs, ...)``.
        stderr: print to stderr (``--json`` keeps stdout for the object).
    """
    rows = []
    for name, s in proj["stages"].items():
        mark = "⚠ " if s["extrapolated"] else ""
        rows.append([name, f"{s['units']:,} {s['unit']}s", f"{mark}{human_seconds(s['wall_s'])}",
                     f"{s['cpu_s'] / 3600:.2f}", f"{s['gpu_s'] / 3600:.2f}", s["from"]])
    print_table(f"estimate: {proj['images']:,} images on {proj['workers']} cores, {proj['gpus']} GPUs "
                f"(measured on {costs['sample_images']} sampled URLs, {costs['cores']} cores)",
                ["step", "work", "wall", "core-h", "GPU-h", "from (measured unit)"], rows, stderr)
    scale = proj["images"] / max(costs["sample_images"], 1)
    trows = []
    for table, b in proj["bytes"].items():
        t = costs["tables"][table]
        per = f"{t['bytes'] / t['rows']:.1f} B/row x {t['rows'] * scale:,.0f} rows" if t.get("rows") else \
            f"{t['bytes']:,} B as measured (not proportional to images)"
        trows.append([table, human_bytes(b), per])
    print_table("bytes per table", ["table", "bytes", "from"], trows, stderr)
    req = proj["requests"]
    totals = [["wall (steps in sequence)", human_seconds(proj["wall_s"])],
              ["CPU core-hours (busy)", f"{proj['core_hours']:.2f}"],
              ["core-hours reserved (wall x cores)", f"{proj['reserved_core_hours']:.2f}"],
              ["GPU-hours", f"{proj['gpu_hours']:.2f}"],
              ["bytes, all tables", human_bytes(proj["bytes_total"])],
              ["regions per image (sample)", f"{proj['regions_per_image']:.2f}"],
              ["shards / files", f"{proj['shards']:,} / {proj['files']:,}"],
              ["object-store requests", f"GET {req['GET']:,}  PUT {req['PUT']:,}  LIST {req['LIST']:,}"],
              ["peak memory per process (sample)", f"driver {proj['memory_mib'].get('driver', 0):,.0f} MiB, "
                                                   f"worker {proj['memory_mib'].get('worker', 0):,.0f} MiB"]]
    if "fit_kmeans" in proj["stages"] and "driver_bytes" in proj["stages"]["fit_kmeans"]:
        k = proj["stages"]["fit_kmeans"]
        totals.append([f"k-means fit driver memory ({k['fit']}, docs/capacity.md)", f"⚠ {human_bytes(k['driver_bytes'])}"])
    print_table("totals (⚠ = extrapolated: >10x the sample or another core count)", ["", "value"], totals, stderr)


def run_estimate(config: str | None, overrides: list[str], images: int, workers: int | None, gpus: int,
                 sample: int, as_json: bool, rates_file: str | None) -> dict[str, Any]:
    """Measure a sample of ``config``'s input and print the projection for ``images`` images.

    Args:
        config: YAML config (or None for defaults + overrides).
        overrides: ``key=value`` settings.
        images: images to project for.
        workers: CPU cores of the target cluster (default: this machine's).
        gpus: GPUs of the target cluster.
        sample: URLs of the input to run.
        as_json: print the projection as one JSON object last (with the measured ``unit_costs``).
        rates_file: ``--rates`` file.
    """
    if images < 1 or sample < 1 or (workers is not None and workers < 1) or gpus < 0:
        raise ConfigError("estimate: --images, --sample and --workers must be >= 1, --gpus >= 0")
    cfg = load_config(config, overrides)
    rates = load_rates(rates_file)
    costs = measure_sample(cfg, sample)
    proj = project(costs, images, workers, gpus, rates)
    print_estimate(costs, proj, stderr=as_json)  # with --json the tables go to stderr, the object last to stdout
    if as_json:
        print(json.dumps({**proj, "unit_costs": costs}, default=float))
    else:
        out_console.print("(--json prints the same as one JSON object)")
    return proj
