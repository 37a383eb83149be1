"""``regionset report OUT``: write the static visual QA site to ``OUT/report/``.

The site is built in a temp folder beside the output and swapped into place, so a report being
rewritten never leaves a half-written ``report/`` behind. All data comes from ``catalog.duckdb``
(opened read-only) and ``regionset.yaml``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from regionset.common.storage import is_remote
from regionset.pipelines.core.catalog import build_catalog, catalog_file, connect
from regionset.pipelines.core.output import CATALOG_FILE, Output
from regionset.pipelines.core.shards import STATE_DIR
from regionset.pipelines.tools.report.curation import curation_body
from regionset.pipelines.tools.report.gallery import gallery_body, images_body
from regionset.pipelines.tools.report.overview import distributions_body, overview_body
from regionset.pipelines.tools.report.pages import page
from regionset.pipelines.tools.report.run_page import run_body

REPORT_DIR = "report"
INDEX = "index.html"
DEFAULT_CLUSTERS = 8
DEFAULT_PER_CLUSTER = 12
DEFAULT_IMAGES = 24


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def report_dir(out: Output) -> Path:
    """``OUT/report``, or for an object-store prefix a local folder next to its catalog file.

    Args:
        out: the output folder or prefix.
    """
    if is_remote(out):
        cat = catalog_file(out)
        return cat.with_name(cat.stem + "-" + REPORT_DIR)
    return Path(out) / REPORT_DIR


def write_report(out: Output, clusters: int = DEFAULT_CLUSTERS, per_cluster: int = DEFAULT_PER_CLUSTER,
                 seed: int = 0, images: int = DEFAULT_IMAGES) -> Path:
    """Write ``OUT/report/`` (overview, distributions, cluster gallery, images, curation, run) and return
    its index.

    Every section shows "no data yet" while its tables are empty, so the report can be written
    after any step of a build.

    Args:
        out: the output folder of a build.
        clusters: leaf clusters shown in each gallery group (largest, smallest, random).
        per_cluster: region crops shown per cluster, closest to the centroid first.
        seed: seed of the SQL sampling (random clusters, sampled images).
        images: images shown with their boxes.
    """
    out = Output.of(out)  # a local folder is absolute
    site = report_dir(out)
    if clusters < 0 or per_cluster < 0 or images < 0:
        raise ValueError("clusters, per_cluster and images must be >= 0")
    if not catalog_file(out).exists():
        if not (out / STATE_DIR).exists():
            raise FileNotFoundError(f"{out} is not a regionset output folder (no {CATALOG_FILE}, no {STATE_DIR}/)")
        build_catalog(out)
    site.parent.mkdir(parents=True, exist_ok=True)
    tmp = site.parent / f".{site.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    con = connect(out)
    try:
        body, results, warnings = overview_body(con, out)
        bodies = [(INDEX, "Overview", body, results)]
        body, results = distributions_body(con, tmp, seed)
        bodies.append(("distributions.html", "Distributions", body, results))
        body, results = gallery_body(con, tmp, clusters, per_cluster, seed)
        bodies.append(("clusters.html", "Cluster gallery", body, results))
        body, results = images_body(con, tmp, images, seed)
        bodies.append(("images.html", "Images", body, results))
        body, results = curation_body(con, out, tmp, seed)
        bodies.append(("curation.html", "Curation", body, results))
        body, results = run_body(con, tmp)
        bodies.append(("run.html", "Run: throughput and failures over time", body, results))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    note = (f"<p><small>written {time.strftime('%Y-%m-%d %H:%M:%S')} in "
            f"{time.perf_counter() - started:.1f} s; seed {seed}</small></p>")
    for file, title, body, results in bodies:
        (tmp / file).write_text(page(file, title, body + note, results, warnings, str(out)), encoding="utf-8")
    final = site
    _swap_into_place(tmp, final)
    return final / INDEX
