"""``regionset report``: the site is valid, self-contained, and shows what the SQL says."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from regionset.pipelines.core.catalog import build_catalog, connect
from regionset.pipelines.core.output import CATALOG_FILE
from regionset.pipelines.tools.report import media, queries, sql
from regionset.pipelines.tools.report.build import write_report
from regionset.pipelines.tools.report.pages import NO_DATA
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.pipelines.report_checks import as_int, check_site
from tests.pipelines.report_synthetic import WARNING, build_synthetic


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = build_synthetic(tmp_path_factory.mktemp("report") / "out")
    index = write_report(out, clusters=2, per_cluster=3, seed=1, images=5)
    return out, index


@pytest.fixture
def synthetic_copy(synthetic, tmp_path):
    """A copy of the synthetic output folder (its catalog views still read the original shards)."""
    out = tmp_path / "copy"
    shutil.copytree(synthetic[0], out, ignore=shutil.ignore_patterns("report"))
    return out


def _count(out, sql):
    con = connect(out)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_site_is_valid_and_self_contained(synthetic):
    out, index = synthetic
    assert index == out / "report" / "index.html"
    pages = check_site(index.parent)
    assert len(list((index.parent / "crops").glob("*.jpg"))) > 0
    assert len(list((index.parent / "images").glob("*.jpg"))) == 5
    assert WARNING in "".join(pages["index.html"].text), "warnings are shown on the overview"
    assert "&lt;b&gt;" in (index.parent / "clusters.html").read_text(), "OCR text is escaped"


def test_numbers_equal_sql_counts(synthetic):
    out, index = synthetic
    pages = check_site(index.parent)
    counts = {k[1]: as_int(v) for k, v in pages["index.html"].numbers.items() if k[0] == "data-count"}
    assert {"images", "regions", "labels", "embeddings", "stage_state"} <= set(counts)
    for table, n in counts.items():
        assert n == _count(out, f"SELECT count(*) FROM {table}"), table
    sizes = {k[1]: as_int(v) for k, v in pages["clusters.html"].numbers.items() if k[0] == "data-size"}
    assert len(sizes) == 6  # 2 largest + 2 smallest + 2 random of 6 leaves
    for cid, n in sizes.items():
        assert n == _count(out, f"SELECT count(*) FROM labels WHERE cluster_id = {int(cid)}")
    largest = _count(out, "SELECT max(n) FROM (SELECT count(*) AS n FROM labels GROUP BY cluster_id)")
    assert max(sizes.values()) == largest
    per_image = {k[1]: as_int(v) for k, v in pages["images.html"].numbers.items() if k[0] == "data-regions"}
    assert len(per_image) == 5
    for key, n in per_image.items():
        assert n == _count(out, f"SELECT count(*) FROM regions WHERE key = {sql.sql_str(key)}")


def test_shown_sql_reruns(synthetic):
    out, index = synthetic
    pages = check_site(index.parent)
    con = connect(out)
    try:
        shown = [s for p in pages.values() for s in p.pre if s.lstrip().startswith(("SELECT", "WITH"))]
        assert len(shown) >= 15
        for sql in shown:
            con.execute(sql).fetchall()
    finally:
        con.close()


def test_crops_closest_to_centroid_first(synthetic):
    out, _ = synthetic
    con = connect(out)
    try:
        r = sql.run(con, "m", queries.cluster_members([0, 1, 2], 3))
    finally:
        con.close()
    by = {}
    for row in r.rows:
        by.setdefault(row[0], []).append(row[2])
    assert by and all(d == sorted(d) and len(d) <= 3 for d in by.values())


def test_big_tables_are_binned_over_a_system_sample(synthetic, tmp_path):
    from regionset.pipelines.tools.report.overview import distributions_body

    assert sql.sample_clause(100, seed=3, target=200) == ""
    assert sql.sample_clause(1_000_000, seed=3, target=200_000) == " TABLESAMPLE 20.0% (system, 3)"
    con = connect(synthetic[0])
    try:
        body, results = distributions_body(con, tmp_path, seed=1, sample_rows=5)
        for r in results:
            assert r.sql == r.sql.strip()
            con.execute(r.sql).fetchall()  # the SQL shown runs as is
    finally:
        con.close()
    assert sum("TABLESAMPLE" in r.sql for r in results) >= 5
    assert "system samples" in body


def test_clusters_table_is_used_when_filled(synthetic_copy):
    out = synthetic_copy
    con = duckdb.connect(str(out / CATALOG_FILE))
    con.execute("""CREATE OR REPLACE TABLE clusters AS
        SELECT 1 AS level, cluster_id AS id, any_value(cluster_path[1]) AS parent, count(*) AS size,
               avg(distance) AS mean_distance FROM labels GROUP BY cluster_id
        UNION ALL SELECT 0, cluster_path[1], -1, count(*), avg(distance) FROM labels GROUP BY cluster_path[1]""")
    con.close()
    con = connect(out)
    try:
        assert queries.leaf_sizes(con) == queries.LEAF_SIZES_FROM_CLUSTERS
    finally:
        con.close()
    pages = check_site(write_report(out, clusters=1, per_cluster=2).parent)
    assert "Clusters per level" in "".join(pages["index.html"].text)
    for (kind, cid), v in pages["clusters.html"].numbers.items():
        if kind == "data-size":
            assert as_int(v) == _count(out, f"SELECT count(*) FROM labels WHERE cluster_id = {int(cid)}")


def test_empty_output_says_no_data_yet(tmp_path):
    (tmp_path / "_state").mkdir()
    build_catalog(tmp_path)
    pages = check_site(write_report(tmp_path).parent)
    for name in ("distributions.html", "clusters.html", "images.html"):
        assert NO_DATA in "".join(pages[name].text), name


def test_report_of_a_real_download_build(server, tmp_path):
    from regionset.pipelines.build import build

    urls = [server.add(f"{i}.jpg", make_jpeg(120 + 10 * i, 90, (40 * i, 90, 160))) for i in range(5)]
    urls.append(server.url("files/missing.jpg"))
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls)))
    index = write_report(out, images=3)
    pages = check_site(index.parent)
    assert as_int(pages["index.html"].numbers[("data-count", "images")]) == 6
    assert len(list((index.parent / "images").glob("*.jpg"))) == 3
    assert "HTTP Error 404" in "".join(pages["index.html"].text)
    assert NO_DATA in "".join(pages["clusters.html"].text)
    write_report(out, images=1)  # rewriting swaps the folder in place
    assert len(list((index.parent / "images").glob("*.jpg"))) == 1


def test_media_tolerates_bad_bytes_and_boxes(tmp_path):
    assert media.decode(b"\xff\xd8 not a jpeg") is None
    img = media.decode(make_jpeg(50, 40))
    assert not media.save_crop(img, (60, 60, 80, 80), tmp_path / "a.jpg")  # outside the image
    assert media.save_crop(img, (-5, -5, 10, 10), tmp_path / "b.jpg")  # clamped
    assert media.save_overlay(img, [{"source": "text", "x0": 1, "y0": 1, "x1": 30, "y1": 20}], tmp_path / "c.jpg")


def test_cli_report(synthetic_copy, tmp_path, capsys):
    from regionset.pipelines.cli import main

    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "holds no regionset output" in capsys.readouterr().err

    assert main(["report", str(synthetic_copy), "--clusters", "1", "--per-cluster", "2", "--images", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(synthetic_copy / "report" / "index.html")
