"""Local executor: shards, markers, skip on re-run, redo what changed, identical tables."""

from __future__ import annotations

import json

from regionset.pipelines.build import build
from regionset.pipelines.core.shards import marker_path, shard_path
from tests.conftest import make_jpeg
from tests.helpers import download_only, table_hash, write_urls


def _corpus(server, n=10):
    urls = [server.add(f"img{i}.jpg", make_jpeg(300 + 10 * i, 200, (i * 20, 100, 50))) for i in range(n)]
    if n > 3:
        urls[3] = server.url("status/404")
    return urls


def test_every_url_exactly_once_and_rerun_skips(server, tmp_path):
    urls = _corpus(server)
    cfg = download_only(tmp_path / "out", write_urls(tmp_path, urls))
    first = build(cfg)
    assert first.shards == [0, 1, 2]
    assert first.reports[0].rows_out == len(urls)
    import duckdb

    con = duckdb.connect(str(tmp_path / "out" / "catalog.duckdb"), read_only=True)
    got = con.execute("SELECT url, count(*) FROM images GROUP BY url").fetchall()
    assert sorted(u for u, _ in got) == sorted(urls) and all(n == 1 for _, n in got)
    hits = dict(server.hits)
    second = build(cfg)
    assert second.reports[0].done == 0 and second.reports[0].skipped == 3
    assert server.hits == hits  # nothing downloaded again


def test_resume_redoes_only_the_missing_shard(server, tmp_path):
    urls = _corpus(server)
    out = tmp_path / "out"
    cfg = download_only(out, write_urls(tmp_path, urls))
    build(cfg)
    before = table_hash(out, "images")
    marker_path(out, "download", 1).unlink()
    shard_path(out, "images", 1).unlink()
    again = build(cfg)
    assert again.reports[0].done == 1 and again.reports[0].skipped == 2
    assert table_hash(out, "images") == before


def test_config_change_redoes_shards(server, tmp_path):
    urls = _corpus(server, 4)
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls)))
    changed = build(download_only(out, write_urls(tmp_path, urls), extra=["download.image_size=256"]))
    assert changed.reports[0].done == 1
    m = json.loads(marker_path(out, "download", 0).read_text())
    assert m["rows_out"] == 4 and m["counters"]["status:success"] == 3


def test_extended_url_list_only_adds_shards(server, tmp_path):
    urls = _corpus(server, 8)
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls)))
    more = urls + [server.add(f"new{i}.jpg", make_jpeg(320, 240)) for i in range(5)]
    res = build(download_only(out, write_urls(tmp_path, more)))
    assert res.shards == [0, 1, 2, 3]
    assert res.reports[0].skipped == 2 and res.reports[0].done == 2


def test_lineage_written(server, tmp_path):
    import yaml

    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, _corpus(server, 2))))
    doc = yaml.safe_load((out / "regionset.yaml").read_text())
    assert doc["config"]["download"]["allow_loopback"] is True
    assert "img2dataset" in doc["versions"] and doc["config_hash"]
