"""The report's curation page: duplicate image pairs side by side, and cluster sizes before and after
a balanced sample (``regionset sample``'s hierarchical sampling of half the clustered regions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from regionset.pipelines.core.output import Output
from regionset.pipelines.tools.report import media, plots
from regionset.pipelines.tools.report.pages import NO_DATA, esc, figure, fmt, table
from regionset.pipelines.tools.report.queries import image_bytes
from regionset.pipelines.tools.report.sql import Result, run
from regionset.schemas import DUPLICATES
from regionset.schemas.tables import DUP_EVAL

PAIRS = 24


def _no_pairs_html(con: duckdb.DuckDBPyConnection, out: Output, results: list[Result]) -> str:
    """No duplicate pairs: how many images were hashed and grouped when the dedup steps ran (a
    ``duplicates`` shard is written for every hashed shard), else where the data would come from."""
    from regionset.pipelines.core.shards import list_shards

    hashed = run(con, "images hashed (dedup step)", "SELECT count(*) AS images FROM hashes")
    results.append(hashed)
    n = int(hashed.rows[0][0]) if hashed.rows else 0
    if n and list_shards(out, DUPLICATES):
        return (f"<p>{n:,} images hashed, 0 duplicate groups: the dedup and group_duplicates steps ran "
                "and found no image that duplicates another (or an evaluation image).</p>")
    return f'<p class="nodata">{NO_DATA}: no duplicates (run the dedup and group_duplicates steps).</p>'


def _pairs_html(con: duckdb.DuckDBPyConnection, out: Output, report_dir: Path, results: list[Result]) -> str:
    pairs = run(con, "duplicate pairs, widest distance first (kept image = smallest key)", f"""
SELECT key, duplicate_of, kind, distance FROM duplicates
ORDER BY distance DESC, kind, key LIMIT {PAIRS}""")
    results.append(pairs)
    counts = run(con, "duplicates by kind", "SELECT kind, count(*) AS images FROM duplicates GROUP BY ALL ORDER BY 1")
    results.append(counts)
    if not pairs.rows:
        return _no_pairs_html(con, out, results)
    keys = sorted({k for row in pairs.rows for k in (row[0], row[1] if row[2] != DUP_EVAL else row[0])})
    got = run(con, "stored image bytes of the pairs shown", image_bytes(keys))
    results.append(Result(got.title, got.sql, got.columns, [(k, f"<{len(b or b'')} bytes>") for k, b in got.rows]))
    decoded = {k: media.decode(b) for k, b in got.rows}

    def thumb(key: str, name: str) -> str:
        img = decoded.get(key)
        if img is None or not media.save_crop(img, (0, 0, img.width, img.height), report_dir / name):
            return f'<p class="nodata">{esc(key)}: no image</p>'
        return f'<img src="{name}" alt="{esc(key)}"><br>{esc(key)}'

    cells = []
    for i, (key, dup_of, kind, dist) in enumerate(pairs.rows):
        right = (thumb(dup_of, f"duplicates/{i}-kept.jpg") if kind != DUP_EVAL
                 else f"evaluation image<br><small>{esc(dup_of)}</small>")
        cells.append(f'<div class="cell" style="width:290px"><div style="display:flex;gap:6px">'
                     f'<div>{thumb(key, f"duplicates/{i}-dup.jpg")}</div><div>{right}</div></div>'
                     f"<b>{esc(kind)}</b> · Hamming distance {fmt(dist)}</div>")
    return (table(["kind", "images"], counts.rows)
            + "<p>Left: the duplicate; right: the image it duplicates (the kept one, or the evaluation "
              "image it matches). The widest distances are shown first: they are where a threshold errs.</p>"
            + f'<div class="grid">{"".join(cells)}</div>')


def _sizes_html(con: duckdb.DuckDBPyConnection, out: Output, report_dir: Path, seed: int,
                results: list[Result]) -> str:
    from regionset.pipelines.tools.sample import sample_regions

    before = run(con, "regions per leaf cluster (clustered regions)", """
SELECT cluster_id, count(*) AS regions FROM labels WHERE cluster_id IS NOT NULL GROUP BY ALL ORDER BY regions DESC""")
    results.append(before)
    total = sum(n for _, n in before.rows)
    if not total:
        return f'<p class="nodata">{NO_DATA}: no clustered regions.</p>'
    sample = sample_regions(out, total // 2, "balanced", seed)
    counts: dict[Any, int] = {}
    for c in sample.column("cluster_id").to_pylist():
        counts[c] = counts.get(c, 0) + 1
    after = sorted(counts.values(), reverse=True)
    figs = [figure(plots.bars(report_dir / "plots", "leaf_sizes_before", list(range(len(before.rows))),
                              [n for _, n in before.rows], "leaf cluster (largest first)", "regions",
                              f"all {total:,} clustered regions"), "before"),
            figure(plots.bars(report_dir / "plots", "leaf_sizes_after", list(range(len(after))), after,
                              "leaf cluster (largest first)", "regions",
                              f"balanced sample of {sample.num_rows:,} (seed {seed})"), "after")]
    rows = [(c, n, counts.get(c, 0)) for c, n in before.rows[:20]]
    return (f'<p>Balanced hierarchical sampling of half the clustered regions (<code>regionset sample OUT '
            f'--size {total // 2} --seed {seed}</code>) flattens the cluster-size distribution.</p>'
            f'<div class="plots">{"".join(figs)}</div>'
            + table(["leaf cluster", "regions", "in the balanced sample"], rows))


def curation_body(con: duckdb.DuckDBPyConnection, out: Output, report_dir: Path, seed: int = 0) -> tuple[str, list[Result]]:
    """HTML of the curation page and the queries it ran; images in ``duplicates/``, plots in ``plots/``.

    Args:
        con: an open catalog connection.
        out: the output folder (the balanced sample reads its labels).
        report_dir: the report folder being written.
        seed: seed of the balanced sample.
    """
    results: list[Result] = []
    body = ("<h2>Duplicate images</h2>" + _pairs_html(con, out, report_dir, results)
            + "<h2>Cluster sizes before and after balanced sampling</h2>"
            + _sizes_html(con, out, report_dir, seed, results))
    return body, results
