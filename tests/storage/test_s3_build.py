"""Builds with ``output: s3://…`` against a real S3-protocol server on loopback (moto).

Parity with a local build (sorted content hashes per table, markers), the lease lock, kill -9 and
resume, unmarked objects cleaned by the next build, bad storage refused with exit 2.
"""

from __future__ import annotations

import json

from regionset.common.storage import as_path
from regionset.pipelines.build import build
from regionset.pipelines.core.shards import marker_path, shard_path
from tests.conftest import make_jpeg
from tests.helpers import download_only, table_hash, write_urls
from tests.pipelines.snapshots import markers
from tests.s3server import s3  # noqa: F401 (fixture)


def _corpus(server, n=10):
    urls = [server.add(f"img{i}.jpg", make_jpeg(300 + 10 * i, 200, (i * 20, 100, 50))) for i in range(n)]
    urls[3] = server.url("status/404")
    return urls


def test_download_to_s3_matches_local(server, s3, tmp_path):  # noqa: F811
    urls = write_urls(tmp_path, _corpus(server))
    local = build(download_only(tmp_path / "local", urls))
    remote = build(download_only(s3.url("parity"), urls))
    assert remote.shards == local.shards == [0, 1, 2]
    got = s3.download("parity", tmp_path / "got")
    for folder in ("input", "images"):
        assert table_hash(got, folder) == table_hash(tmp_path / "local", folder)
    assert markers(got) == markers(tmp_path / "local")
    assert json.loads(as_path(s3.url("parity/_state/build.lock")).read_bytes())["released"]  # kept, released
    again = build(download_only(s3.url("parity"), urls))
    assert again.reports[0].skipped == 3 and again.reports[0].done == 0


def test_unmarked_object_is_redone_and_cleaned(server, s3, tmp_path):  # noqa: F811
    from regionset.common.storage import as_path

    urls = write_urls(tmp_path, _corpus(server, 6))
    out = s3.url("resume")
    build(download_only(out, urls))
    before = table_hash(s3.download("resume", tmp_path / "a"), "images")
    marker_path(as_path(out), "download", 1).unlink()  # as if killed between the PUT and the marker
    orphan = shard_path(as_path(out), "images", 7)  # an object no marker commits
    orphan.write_bytes(b"not parquet")
    from regionset.pipelines.core.catalog import build_catalog, connect

    build_catalog(out)  # before the next build cleans it, the catalog already ignores the orphan
    con = connect(as_path(out))
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 4  # shard 0 only: shard 1 lost its marker
    con.close()
    res = build(download_only(out, urls))
    assert res.reports[0].done == 1 and res.reports[0].skipped == 1
    assert not orphan.exists()
    assert table_hash(s3.download("resume", tmp_path / "b"), "images") == before


def test_lease_is_renewed_while_held_and_refuses_a_second_holder(s3):  # noqa: F811
    import json
    import time

    from regionset.pipelines.core.lease import LeaseLock
    from regionset.pipelines.core.lock import LockedError

    with LeaseLock(s3.url("lease"), lease_seconds=0.9) as held:
        first = json.loads(held.path.read_text())["beat"]
        time.sleep(1.5)  # past the first lease: only a renewal keeps it (a new version each time)
        now = json.loads(held.path.read_text())
        assert now["beat"] > first and now["owner"] == held.info["owner"] and not now["released"]
        other = LeaseLock(s3.url("lease"))
        try:
            other.__enter__()
            raise AssertionError("a second writer took a live lease")
        except LockedError as err:
            assert str(held.info["holder"]["pid"]) in str(err)
    assert json.loads(held.path.read_text())["released"]  # kept (its token only grows), marked released


def test_input_list_read_from_s3(server, s3, tmp_path):  # noqa: F811
    from regionset.common.storage import as_path

    local_list = write_urls(tmp_path, _corpus(server, 5))
    remote_list = as_path(s3.url("lists/urls.parquet"))
    remote_list.write_bytes(local_list.read_bytes())
    local = build(download_only(tmp_path / "a", local_list))
    remote = build(download_only(tmp_path / "b", s3.url("lists")))  # a prefix of URL lists, one listing
    assert remote.shards == local.shards
    assert table_hash(tmp_path / "b", "images") == table_hash(tmp_path / "a", "images")
