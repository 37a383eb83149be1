"""Overview and distributions pages: counts, failures, timings, lineage, histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import yaml

from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import Output
from regionset.pipelines.tools.report import plots, queries
from regionset.pipelines.tools.report.pages import NO_DATA, esc, figure, result_table, table
from regionset.pipelines.tools.report.sql import SAMPLE_ROWS, Result, existing_tables, run, sample_clause
from regionset.schemas.tables import IMAGES, LABELS, REGIONS


def read_lineage(out: Output) -> dict[str, Any]:
    """``OUT/regionset.yaml`` as a dict (empty when missing or unreadable)."""
    try:
        doc = yaml.safe_load((out / LINEAGE_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, dict):
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), "" if d is None else str(d))]


def table_counts(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], list[Result]]:
    """Row count of every catalog table that exists (missing ones are left out).

    Args:
        con: an open catalog connection.
    """
    present = existing_tables(con)
    counts, results = {}, []
    for t in queries.COUNTED_TABLES:
        if t in present:
            r = run(con, f"rows of {t}", queries.count_rows(t))
            counts[t] = int(r.rows[0][0])
            results.append(r)
    return counts, results


def overview_body(con: duckdb.DuckDBPyConnection, out: Output) -> tuple[str, list[Result], list[str]]:
    """HTML of the overview page, the queries it ran, and the run warnings.

    Args:
        con: an open catalog connection.
        out: the output folder (for ``regionset.yaml``).
    """
    lineage = read_lineage(out)
    warnings = [str(w) for w in lineage.get("warnings") or []]
    counts, results = table_counts(con)
    present = existing_tables(con)
    sections = [f"<p>Output folder <code>{esc(out)}</code>; lineage written "
                f"{esc(lineage.get('written_at', 'never'))}, config hash "
                f"<code>{esc(lineage.get('config_hash', '-'))}</code>.</p>"]
    missing = [t for t in queries.COUNTED_TABLES if t not in counts]
    sections.append("<h2>Rows per table</h2>" + table(
        ["table", "rows"], [(t, n) for t, n in counts.items()],
        [f'data-count="{esc(t)}"' for t in counts]))
    if missing:
        sections.append(f"<p class=nodata>not in the catalog yet: {esc(', '.join(missing))}</p>")
    for title, sql in (("Images by status", queries.IMAGES_BY_STATUS),
                       ("Regions by source", queries.REGIONS_BY_SOURCE),
                       ("Failure reasons (images)", queries.FAILURE_REASONS),
                       ("Stage counters (drops and failures by reason)", queries.STAGE_COUNTERS),
                       ("Stage timings", queries.STAGE_TIMINGS),
                       ("Recent runs", queries.RECENT_RUNS)):
        r = run(con, title, sql)
        results.append(r)
        sections.append(f"<h2>{esc(title)}</h2>{result_table(r)}")
    if queries.CLUSTERS in present:
        try:
            r = run(con, "Clusters per level", queries.CLUSTER_LEVELS)
            results.append(r)
            sections.append(f"<h2>Clusters per level</h2>{result_table(r)}")
        except duckdb.Error as err:  # a clusters table of another shape: say so, do not fail
            sections.append(f"<h2>Clusters per level</h2><p class=nodata>{esc(err)}</p>")
    if "vocab" in present:
        r = run(con, "OCR token vocabulary", queries.VOCAB)
        results.append(r)
        sections.append(f"<h2>OCR token vocabulary</h2>{result_table(r)}")
    models = _flatten(lineage.get("models") or {})
    sections.append("<h2>Models</h2>" + table(["model", "id"], models))
    sections.append("<h2>Versions</h2>" + table(["package", "version"], _flatten(lineage.get("versions") or {})))
    cfg = lineage.get("config")
    sections.append("<h2>Config</h2>" + (f"<pre>{esc(yaml.safe_dump(cfg, sort_keys=False))}</pre>"
                                         if cfg else f"<p class=nodata>{NO_DATA}</p>"))
    return "\n".join(sections), results, warnings


_DISTRIBUTIONS = (  # name, title, table sampled, SQL builder taking the sample clause
    ("cluster_sizes", "Leaf cluster sizes (log-log)", None, None),
    ("regions_per_image", "Regions per downloaded image (100 = 100 or more)", IMAGES, queries.regions_per_image),
    ("region_side", "Region size: sqrt(area) in stored pixels", REGIONS, queries.region_side_bins),
    ("region_aspect", "Region aspect: width / height", REGIONS, queries.region_aspect_bins),
    ("ocr_score", "OCR confidence of text regions", REGIONS, queries.ocr_score_bins),
    ("tokens_per_text", "Tokens per text region (labels.token_ids)", LABELS, queries.tokens_per_text_region),
)


def _plot(folder: Path, name: str, title: str, r: Result) -> str | None:
    rows = r.rows
    if name == "cluster_sizes":
        return plots.loglog_sizes(folder, name, [b for b, *_ in rows], [c for _, c, *_ in rows], title)
    if name == "region_side":
        return plots.by_source(folder, name, rows, "sqrt(area), stored pixels (log scale)", title, 0.25,
                               tick=lambda v: f"{2 ** v:g}")
    if name == "region_aspect":
        return plots.by_source(folder, name, rows, "width : height (log scale)", title, 0.25,
                               tick=lambda v: f"{2 ** v:g}:1" if v >= 0 else f"1:{2 ** -v:g}")
    if name == "ocr_score":
        return plots.bars(folder, name, [b + 0.025 for b, _ in rows], [n for _, n in rows], "confidence",
                          "regions", title, width=0.045)
    xlabel = "regions per image" if name == "regions_per_image" else "tokens"
    return plots.bars(folder, name, [b for b, _ in rows], [n for _, n in rows], xlabel,
                      "images" if name == "regions_per_image" else "regions", title)


def distributions_body(con: duckdb.DuckDBPyConnection, report_dir: Path, seed: int = 0,
                       sample_rows: int = SAMPLE_ROWS) -> tuple[str, list[Result]]:
    """HTML of the distributions page (plots from SQL-binned counts) and the queries it ran.

    Args:
        con: an open catalog connection.
        report_dir: the report folder; plots go to ``plots/`` inside it.
        seed: seed of the system samples.
        sample_rows: tables with more rows are binned over a system sample of about this many rows.
    """
    sizes = {t: int(con.execute(queries.count_rows(t)).fetchone()[0]) for t in (IMAGES, REGIONS, LABELS)}
    samples = {t: sample_clause(n, seed, sample_rows) for t, n in sizes.items()}
    figs, results = [], []
    for name, title, tab, build in _DISTRIBUTIONS:
        r = run(con, title, build(samples[tab]) if build else queries.cluster_size_bins(queries.leaf_sizes(con)))
        results.append(r)
        figs.append(f'<div id="{name}">{figure(_plot(report_dir / "plots", name, title, r), title)}'
                    f"<details><summary>bins</summary>{result_table(r)}</details></div>")
    tokens = run(con, "Top OCR label tokens", queries.top_tokens(
        samples[LABELS], "vocab_tokens" in existing_tables(con)))
    results.append(tokens)
    sampled = [f"{t} ({sizes[t]:,} rows): {s.strip()}" for t, s in samples.items() if s]
    note = ("Binned over system samples of about " + f"{sample_rows:,} rows: " + esc("; ".join(sampled))
            if sampled else "Binned over every row")
    body = (f"<p>Counts are binned in DuckDB; only the bins leave the database. {note}. "
            "Leaf cluster sizes are always exact.</p>"
            f'<div class="plots">{"".join(figs)}</div><h2>Top OCR label tokens</h2>{result_table(tokens)}')
    return body, results
