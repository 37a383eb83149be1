"""Report build time vs catalog size: is ``regionset report`` dominated by the rows it shows?

Writes a synthetic output folder per size straight into Parquet shards with DuckDB (images with
small real JPEGs, regions, labels with a skewed cluster-size distribution and OCR token ids), builds
its catalog (plus a filled ``clusters`` table, as after k-means), then times ``write_report`` and
each of its sections, median of ``--runs``. A full scan of ``images.jpg`` is timed beside it to show
what the report avoids.

    python bench/report.py --regions 1000000 2000000 --runs 3
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from regionset.pipelines.core.catalog import build_catalog, connect
from regionset.pipelines.core.output import CATALOG_FILE
from regionset.pipelines.core.shards import ROW_GROUP_ROWS, write_table
from regionset.pipelines.tools.report.build import write_report
from regionset.pipelines.tools.report.gallery import gallery_body, images_body
from regionset.pipelines.tools.report.overview import distributions_body, overview_body
from regionset.schemas import IMAGES, LABELS, REGIONS_OBJECT, REGIONS_TEXT

REGIONS_PER_IMAGE = 20  # 15 object + 5 text
REGIONS_PER_SHARD = 100_000
REGIONS_PER_LEAF = 100
JPEG_PAD = 16_384


def _jpeg_pool(n: int = 16) -> list[bytes]:
    """Smooth 320×240 JPEGs of a few KB; each row adds its own incompressible padding."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)).resize((320, 240), Image.BICUBIC)
        ImageDraw.Draw(img).rectangle((10 + i, 10, 160 + 3 * i, 140), fill=(250, 250, 250))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def make_output(out: Path, regions: int, image_row_group: int = ROW_GROUP_ROWS) -> None:
    """Write ``regions`` regions (and regions / 20 images, labels, a clusters table) under ``out``.

    Args:
        out: the folder to fill.
        regions: number of regions.
        image_row_group: rows per Parquet row group of the images table.
    """
    con = duckdb.connect()
    pool = _jpeg_pool()
    rng = np.random.default_rng(0)
    leaves = max(1, regions // REGIONS_PER_LEAF)
    per_shard_img = REGIONS_PER_SHARD // REGIONS_PER_IMAGE
    n_img = regions // REGIONS_PER_IMAGE
    for s in range((n_img + per_shard_img - 1) // per_shard_img):
        lo, hi = s * per_shard_img, min(n_img, (s + 1) * per_shard_img)
        name = f"part-{s:05d}.parquet"
        for d in (IMAGES, REGIONS_OBJECT, REGIONS_TEXT, LABELS):
            (out / d).mkdir(parents=True, exist_ok=True)
        opts = "(FORMAT parquet, ROW_GROUP_SIZE 1024)"
        images = con.sql(f"""SELECT printf('%09d', i) AS key, 'http://bench/' || i || '.jpg' AS url,
            'caption ' || i AS caption, 'success' AS status, NULL::VARCHAR AS error_message,
            320::INTEGER AS width, 240::INTEGER AS height, 320::INTEGER AS original_width,
            240::INTEGER AS original_height, md5(i::VARCHAR) AS sha256
            FROM range({lo}, {hi}) t(i) ORDER BY i""").to_arrow_table()
        # a pooled JPEG + incompressible trailing bytes (ignored by decoders after the end marker), so
        # every row weighs what a real ~20 KB image weighs even after zstd
        jpg = [pool[i % len(pool)] + rng.bytes(JPEG_PAD) for i in range(lo, hi)]
        images = images.append_column("jpg", pa.array(jpg, pa.binary()))
        # the project's own writer, so row groups are those of a real build (ROW_GROUP_ROWS)
        write_table(images, out / IMAGES / name, row_group_rows=image_row_group)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE r AS
            SELECT printf('%09d', i) AS key, j, md5(i || '-' || j) AS region_id,
                   CASE WHEN j < 15 THEN 'object' ELSE 'text' END AS source,
                   (hash(i, j, 1) % 250)::FLOAT AS x0, (hash(i, j, 2) % 190)::FLOAT AS y0
            FROM range({lo}, {hi}) t(i), range({REGIONS_PER_IMAGE}) u(j)""")
        for d, src in ((REGIONS_OBJECT, "object"), (REGIONS_TEXT, "text")):
            con.execute(f"""COPY (SELECT region_id, key, source, x0, y0,
                x0 + 8 + (hash(region_id) % 50)::FLOAT AS x1, y0 + 6 + (hash(region_id, 7) % 34)::FLOAT AS y1,
                (0.5 + (hash(region_id, 3) % 500) / 1000.0)::FLOAT AS score,
                CASE WHEN source = 'object' THEN 'class' || (j % 7) END AS class_name,
                CASE WHEN source = 'text' THEN 'TEXT ' || j END AS text, 'bench@1' AS proposer
                FROM r WHERE source = '{src}' ORDER BY key, j) TO '{out / d / name}' {opts}""")
        # skewed leaf sizes: cluster = floor(leaves * u^2) for uniform u
        con.execute(f"""COPY (SELECT region_id, key, source,
                [c // 100, c]::INTEGER[] AS cluster_path, c::INTEGER AS cluster_id,
                ((hash(region_id, 5) % 1000) / 1000.0)::FLOAT AS distance,
                CASE WHEN source = 'text' THEN [(hash(region_id, 9) % 49000)::INTEGER, 300, 301] END AS token_ids
            FROM (SELECT *, least({leaves - 1}, floor({leaves} * pow((hash(region_id, 4) % 1000000) / 1e6, 2)))::BIGINT AS c
                  FROM r) ORDER BY key, j) TO '{out / LABELS / name}' {opts}""")
    (out / "_state").mkdir(exist_ok=True)
    con.close()
    build_catalog(out)
    cat = duckdb.connect(str(out / CATALOG_FILE))
    if cat.execute("SELECT count(*) FROM clusters WHERE size > 0").fetchone()[0] == 0:
        cat.execute("""CREATE OR REPLACE TABLE clusters AS
            SELECT 1 AS level, cluster_id AS id, min(cluster_path[1]) AS parent, count(*) AS size,
                   avg(distance) AS mean_distance FROM labels GROUP BY cluster_id""")
    cat.close()


def _sections(out: Path, tmp: Path) -> dict[str, float]:
    con = connect(out)
    steps = (("overview", lambda: overview_body(con, out)),
             ("distributions", lambda: distributions_body(con, tmp)),
             ("gallery", lambda: gallery_body(con, tmp, 8, 12, 0)),
             ("images", lambda: images_body(con, tmp, 24, 0)),
             ("full jpg scan", lambda: con.execute("SELECT sum(octet_length(jpg)) FROM images").fetchall()))
    times = {}
    try:
        for name, fn in steps:
            t = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t
    finally:
        con.close()
    return times


def time_sections(out: Path, runs: int) -> dict[str, float]:
    """Median seconds of the whole report and of each section (with a full ``jpg`` scan beside)."""
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        t = time.perf_counter()
        write_report(out)
        times.setdefault("report", []).append(time.perf_counter() - t)
        tmp = Path(tempfile.mkdtemp(dir=out))
        for k, v in _sections(out, tmp).items():
            times.setdefault(k, []).append(v)
        shutil.rmtree(tmp)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", type=int, nargs="+", default=[1_000_000, 2_000_000])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the synthetic folders")
    p.add_argument("--image-row-group", type=int, default=ROW_GROUP_ROWS,
                   help=f"rows per row group of the images table (the project writes {ROW_GROUP_ROWS})")
    args = p.parse_args()
    rows = []
    for n in args.regions:
        out = Path(tempfile.mkdtemp(prefix=f"regionset-bench-report-{n}-"))
        t = time.perf_counter()
        make_output(out, n, args.image_row_group)
        gen = time.perf_counter() - t
        size_mb = sum(f.stat().st_size for f in out.rglob("*.parquet")) / 1e6
        rgs = sum(pq.ParquetFile(f).metadata.num_row_groups for f in (out / IMAGES).glob("*.parquet"))
        rows.append((n, gen, size_mb, rgs, time_sections(out, args.runs)))
        print(f"{n:,} regions: generated in {gen:.1f} s ({size_mb:.0f} MB Parquet) -> {out}", flush=True)
        if not args.keep:
            shutil.rmtree(out)
    cols = ["report", "overview", "distributions", "gallery", "images", "full jpg scan"]
    print("\n| regions | Parquet MB | images row groups | " + " | ".join(f"{c} s" for c in cols)
          + " | report ratio | jpg scan ratio |")
    print("|" + "---|" * (len(cols) + 5))
    base = rows[0][4]
    for n, _gen, mb, rgs, t in rows:
        print(f"| {n:,} | {mb:.0f} | {rgs} | " + " | ".join(f"{t[c]:.2f}" for c in cols)
              + f" | {t['report'] / base['report']:.2f} | {t['full jpg scan'] / base['full jpg scan']:.2f} |")


if __name__ == "__main__":
    main()
