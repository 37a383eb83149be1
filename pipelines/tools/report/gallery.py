"""Cluster gallery and image pages: the only parts of the report that read image bytes.

Both read ``images.jpg`` for the keys they show and nothing else: crops of the regions closest to
each picked cluster's centroid, and sampled images with their object and OCR boxes drawn on.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb

from regionset.pipelines.tools.report import media, queries
from regionset.pipelines.tools.report.pages import NO_DATA, esc, fmt, table
from regionset.pipelines.tools.report.sql import Result, run
from regionset.schemas.tables import SOURCE_TEXT

_PICK_TITLES = {"largest": "Largest leaf clusters", "smallest": "Smallest leaf clusters",
                "random": "Random leaf clusters"}


def _decoded(con: duckdb.DuckDBPyConnection, keys: list[str], results: list[Result]) -> dict[str, Any]:
    if not keys:
        return {}
    r = run(con, "stored image bytes of the keys shown", queries.image_bytes(sorted(set(keys))))
    results.append(Result(r.title, r.sql, r.columns, [(k, f"<{len(b or b'')} bytes>") for k, b in r.rows],
                          r.seconds))
    return {k: media.decode(b) for k, b in r.rows}


def _rows(r: Result) -> list[dict[str, Any]]:
    return [dict(zip(r.columns, row)) for row in r.rows]


def gallery_body(con: duckdb.DuckDBPyConnection, report_dir: Path, clusters: int, per_cluster: int,
                 seed: int) -> tuple[str, list[Result]]:
    """HTML of the cluster gallery and the queries it ran; crops go to ``crops/``.

    Args:
        con: an open catalog connection.
        report_dir: the report folder.
        clusters: leaf clusters shown in each group (largest, smallest, random).
        per_cluster: crops shown per cluster, closest to the centroid first.
        seed: seed of the random group.
    """
    picked = run(con, "picked leaf clusters", queries.picked_clusters(clusters, seed, queries.leaf_sizes(con)))
    results = [picked]
    if not picked.rows:
        return f'<p class="nodata">{NO_DATA}: the labels table has no assigned regions.</p>', results
    picks = _rows(picked)
    members = run(con, "regions closest to each centroid",
                  queries.cluster_members([p["cluster_id"] for p in picks], per_cluster))
    results.append(members)
    member_rows = _rows(members)
    boxes = run(con, "boxes and text of those regions", queries.region_boxes(
        [m["key"] for m in member_rows], [m["region_id"] for m in member_rows]))
    results.append(boxes)
    box_of = {b["region_id"]: b for b in _rows(boxes)}
    by_cluster: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in member_rows:
        if m["region_id"] in box_of:  # a label whose region row is gone is not shown
            by_cluster[m["cluster_id"]].append({**m, **box_of[m["region_id"]]})
    images = _decoded(con, [m["key"] for ms in by_cluster.values() for m in ms], results)
    parts = ['<p class="legend">Crops are ordered by distance to the leaf centroid (closest first). '
             'Sources: <span style="background:#e8890c"></span>object '
             '<span style="background:#1f77d4"></span>text</p>']
    for group in ("largest", "smallest", "random"):
        chosen = [p for p in picks if p["pick"] == group]
        if not chosen:
            continue
        parts.append(f"<h2>{_PICK_TITLES[group]}</h2>")
        for p in chosen:
            cid, ms = p["cluster_id"], by_cluster.get(p["cluster_id"], [])
            path = ms[0]["cluster_path"] if ms else None
            cells = []
            for i, m in enumerate(ms):
                name = f"crops/c{cid}-{i}.jpg"
                img = images.get(m["key"])
                ok = img is not None and media.save_crop(img, (m["x0"], m["y0"], m["x1"], m["y1"]),
                                                         report_dir / name)
                pic = f'<img src="{name}" alt="region {esc(m["region_id"])}">' if ok else \
                    '<p class="nodata">image not decodable</p>'
                what = m["text"] if m["source"] == SOURCE_TEXT else m["class_name"]
                cls = "txt" if m["source"] == SOURCE_TEXT else "obj"
                cells.append(f'<div class="cell">{pic}<span class="{cls}">{esc(m["source"])}</span> '
                             f'{esc(what)}<br>d={fmt(m["distance"])} · <code>{esc(m["key"])}</code></div>')
            parts.append(
                f'<div class="cluster" id="cluster-{cid}"><h3>cluster {cid} · '
                f'<span data-size="{cid}">{p["size"]:,}</span> regions · path '
                f'<span class="path">{fmt(path)}</span> · mean distance {fmt(p["mean_distance"])}</h3>'
                f'<div class="grid">{"".join(cells)}</div></div>')
    return "\n".join(parts), results


def images_body(con: duckdb.DuckDBPyConnection, report_dir: Path, n_images: int,
                seed: int) -> tuple[str, list[Result]]:
    """HTML of the image pages (sampled images with boxes) and the queries it ran; files in ``images/``.

    Args:
        con: an open catalog connection.
        report_dir: the report folder.
        n_images: images sampled.
        seed: sampling seed.
    """
    sample = run(con, "sampled images", queries.sampled_images(n_images, seed))
    results = [sample]
    if not sample.rows:
        return f'<p class="nodata">{NO_DATA}: no downloaded images.</p>', results
    imgs = _rows(sample)
    keys = [i["key"] for i in imgs]
    regions = run(con, "regions of the sampled images", queries.image_regions(keys))
    results.append(regions)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(regions):
        by_key[r["key"]].append(r)
    decoded = _decoded(con, keys, results)
    toc = " · ".join(f'<a href="#img-{i}">{esc(im["key"])}</a>' for i, im in enumerate(imgs))
    parts = [f"<p>{len(imgs)} images sampled in SQL. Boxes: "
             '<span class="obj">object (amber)</span>, <span class="txt">text / OCR (blue)</span>; '
             f"numbers match the table rows.</p><p>{toc}</p>"]
    for i, im in enumerate(imgs):
        regs = by_key.get(im["key"], [])
        img = decoded.get(im["key"])
        name = f"images/{i}.jpg"
        pic = (f'<img src="{name}" alt="{esc(im["key"])}">' if img is not None
               and media.save_overlay(img, regs, report_dir / name) else
               '<p class="nodata">stored bytes do not decode</p>')
        rows = [(j, r["source"], r["class_name"] if r["source"] != SOURCE_TEXT else r["text"], r["score"],
                 r["cluster_id"], r["cluster_path"],
                 ",".join("-" if r[c] is None else f"{r[c]:.0f}" for c in ("x0", "y0", "x1", "y1")))
                for j, r in enumerate(regs, 1)]
        parts.append(
            f'<h2 id="img-{i}">{esc(im["key"])} · {fmt(im["width"])}×{fmt(im["height"])} · '
            f'<span data-regions="{esc(im["key"])}">{len(regs):,}</span> regions</h2>'
            f'<p>{esc(im["caption"])}<br><small>{esc(im["url"])}</small></p>{pic}'
            + table(["#", "source", "label / text", "score", "cluster", "path", "box x0,y0,x1,y1"], rows))
    return "\n".join(parts), results
