"""The catalog opens with a bare DuckDB client, from any working directory, while builds refresh it."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

from regionset.pipelines.build import build
from regionset.pipelines.core.catalog import build_catalog
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls


def test_views_from_bare_duckdb(server, tmp_path, monkeypatch):
    urls = [server.add(f"i{i}.jpg", make_jpeg(200, 200)) for i in range(5)] + [server.url("status/500")]
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls)))
    monkeypatch.chdir("/")
    code = ("import duckdb,sys; c=duckdb.connect(sys.argv[1], read_only=True);"
            "print(c.execute(\"select count(*) from images where status='success'\").fetchone()[0]);"
            "print(c.execute('select count(*) from stage_state').fetchone()[0]);"
            "print(c.execute('select count(*) from runs').fetchone()[0]);"
            "print(c.execute('select count(*) from regions').fetchone()[0])")
    r = subprocess.run([sys.executable, "-c", code, str(out / "catalog.duckdb")], capture_output=True, text=True,
                       cwd="/", env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5", "2", "1", "0"]


def test_reader_keeps_working_during_refresh(server, tmp_path):
    urls = [server.add(f"i{i}.jpg", make_jpeg(100, 100)) for i in range(3)]
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls)))
    reader = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    build_catalog(out)  # replaced by rename: the open reader is unaffected
    assert reader.execute("select count(*) from images").fetchone()[0] == 3
    reader.close()
    fresh = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    assert fresh.execute("select count(*) from images").fetchone()[0] == 3
