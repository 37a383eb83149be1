"""The object-store layer is fsspec's, not S3's: a build into ``memory://`` (fsspec's in-memory
filesystem, no version tokens in its listings) runs through the same ``RemotePath`` code and equals
the local build; a resume skips every shard; the catalog reads the tables through fsspec."""

from __future__ import annotations

from pathlib import Path

import pytest

from regionset.common.storage import RemotePath, as_path
from regionset.pipelines.build import build
from regionset.pipelines.core.catalog import connect
from tests.conftest import make_jpeg
from tests.helpers import download_only, table_hash, write_urls
from tests.pipelines.snapshots import markers


def _copy(root: RemotePath, to: Path) -> Path:
    for obj in root.rglob("*"):
        dest = to / obj.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(obj.read_bytes())
    return to


def test_memory_filesystem_build_matches_local(server, tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    monkeypatch.setenv("REGIONSET_CATALOG_DIR", str(tmp_path / "catalogs"))
    urls = write_urls(tmp_path, [server.add(f"m{i}.jpg", make_jpeg(200 + 9 * i, 150)) for i in range(7)]
                      + [server.url("status/404")])
    out = "memory://regionset-mem/out"
    local = build(download_only(tmp_path / "local", urls))
    remote = build(download_only(out, urls))
    root = as_path(out)
    assert isinstance(root, RemotePath) and remote.shards == local.shards == [0, 1]
    got = _copy(root, tmp_path / "got")
    for folder in ("input", "images"):
        assert table_hash(got, folder) == table_hash(tmp_path / "local", folder)
    assert markers(got) == markers(tmp_path / "local")
    again = build(download_only(out, urls))
    assert (again.reports[0].skipped, again.reports[0].done) == (2, 0)
    con = connect(root)
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 8
    con.close()
