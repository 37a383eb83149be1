"""The report's run page: throughput and failures per stage over time, from the markers' timestamps."""

from __future__ import annotations

import shutil

from regionset.pipelines.core.catalog import build_catalog, connect
from regionset.pipelines.tools.report.build import write_report
from regionset.pipelines.tools.report.run_page import BINS
from tests.pipelines.report_synthetic import build_synthetic
from tests.pipelines.test_eta import write_state

T0 = 1_800_000_000.0


def test_run_page_bins_marker_times_and_counts_failures(tmp_path):
    out = tmp_path / "out"
    # 30 download shards over 300 s, 10 detect shards over the next 200 s; each 5 s long
    write_state(out, {"download": [T0 + 10 * i for i in range(1, 31)]}, shards=30)
    write_state(out, {"detect": [T0 + 300 + 20 * i for i in range(1, 11)]}, shards=30,
                counters={"status:success": 8, "error:timeout": 2})
    shutil.rmtree(out / "input")  # empty stand-ins: the run page reads only the markers
    build_catalog(out)
    index = write_report(out, clusters=1, per_cluster=1, images=1)
    page = (index.parent / "run.html").read_text()
    assert 'src="plots/run-throughput.png"' in page and 'src="plots/run-failures.png"' in page
    assert (index.parent / "plots" / "run-throughput.png").is_file()
    assert 'href="run.html"' in (index.parent / "index.html").read_text()
    con = connect(out)
    try:
        shown = [line for line in page.split("<pre>")[1:]]
        assert len(shown) == 2
        binned = con.execute(shown[1].split("</pre>")[0].replace("&#x27;", "'").replace("&gt;", ">")
                             .replace("&lt;", "<").replace("&quot;", '"').replace("&amp;", "&")).fetchall()
    finally:
        con.close()
    assert max(b for _, b, *_ in binned) <= BINS
    assert sum(n for s, _, n, *_ in binned if s == "download") == 30
    assert sum(n for s, _, n, *_ in binned if s == "detect") == 10
    assert "20" in page  # 10 detect shards x 2 failed rows, in the table of the binned query


def test_run_page_without_markers_says_no_data(tmp_path):
    out = build_synthetic(tmp_path / "out")
    page = (write_report(out, clusters=1, per_cluster=1, images=1).parent / "run.html").read_text()
    assert "Run: throughput" in page
