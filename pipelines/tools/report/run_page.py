"""The report's run page: throughput and failures over time per stage, from the markers' timestamps
(``stage_state.finished_at`` in the catalog), binned in SQL into at most ``BINS`` intervals."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import duckdb

from regionset.pipelines.tools.report import plots
from regionset.pipelines.tools.report.pages import NO_DATA, figure, table
from regionset.pipelines.tools.report.sql import Result, run
from regionset.pipelines.tools.watch import failures

BINS = 40


def _bin_width(con: duckdb.DuckDBPyConnection) -> tuple[float, float] | None:
    span = con.execute("SELECT min(finished_at - seconds), max(finished_at) FROM stage_state").fetchone()
    if span is None or span[0] is None:
        return None
    t0, t1 = float(span[0]), float(span[1])
    return t0, max((t1 - t0) / BINS, 1.0)


def run_body(con: duckdb.DuckDBPyConnection, report_dir: Path) -> tuple[str, list[Result]]:
    """HTML of the run page and the queries it ran.

    Args:
        con: an open catalog connection.
        report_dir: the site folder (plots go under it).
    """
    results: list[Result] = []
    bounds = _bin_width(con)
    if bounds is None:
        return f'<p class="nodata">{NO_DATA}: no completion markers (no stage has finished a shard).</p>', results
    t0, w = bounds
    per_stage = run(con, "per stage: shards, rows, wall span and mean seconds per shard", """
SELECT stage, count(*) AS shards, sum(rows_in) AS rows_in, sum(rows_out) AS rows_out,
       round(max(finished_at) - min(finished_at - seconds), 1) AS span_s, round(avg(seconds), 3) AS mean_shard_s
FROM stage_state GROUP BY stage ORDER BY min(finished_at)""")
    results.append(per_stage)
    binned = run(con, f"shards and input rows per stage in {w:.1f}-second bins since the first shard started", f"""
SELECT stage, floor((finished_at - {t0!r}) / {w!r})::BIGINT AS bin, count(*) AS shards, sum(rows_in) AS rows_in,
       list(counters) AS counters
FROM stage_state GROUP BY ALL ORDER BY stage, bin""")
    results.append(Result(binned.title, binned.sql, binned.columns[:4] + ["failed_rows"],
                          [(*r[:4], sum(failures(json.loads(c)) for c in r[4])) for r in binned.rows]))
    order = [r[0] for r in per_stage.rows]
    rows_s: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    fails: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for stage, b, _shards, rows_in, counters in binned.rows:
        minute = (b + 0.5) * w / 60
        rows_s[stage][0].append(minute)
        rows_s[stage][1].append(rows_in / w)
        fails[stage][0].append(minute)
        fails[stage][1].append(sum(failures(json.loads(c)) for c in counters))
    thr = plots.lines(report_dir / "plots", "run-throughput", {s: rows_s[s] for s in order},
                      "minutes since the first shard started", "input rows / s", "throughput per stage")
    bad = plots.lines(report_dir / "plots", "run-failures", {s: fails[s] for s in order if any(fails[s][1])},
                      "minutes since the first shard started", "failed rows per bin",
                      "failures per stage (error:* and status:* other than success)")
    body = (table(per_stage.columns, per_stage.rows)
            + figure(thr, "throughput per stage")
            + (figure(bad, "failures over time") if bad else "<p>No failed rows in any marker.</p>")
            + "<p>From the completion markers (<code>stage_state</code>): each shard counted when its marker "
              "was written; a stage's time runs from its first shard's start.</p>")
    return body, results
