"""Planning on an object store reads listings and one index per stage, not one object per shard.

Against the loopback S3 server (moto): a resumed build reads no marker and hashes no input object
one by one; a marker rewritten since the index was saved (markers of different runs coexisting) is
read again and decides exactly as on local disk; a killed redo never leaves a marker over bytes it does
not describe.
"""

from __future__ import annotations

import json

import pytest

import regionset.pipelines.core.marker_index as marker_index
import regionset.pipelines.core.shards as shards
from regionset.common.storage import RemotePath, as_path
from regionset.pipelines.build import build
from regionset.pipelines.core.shards import marker_path
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)


@pytest.fixture
def reads(monkeypatch):
    """Counts markers read one by one and objects hashed by reading them."""
    counts = {"marker": 0, "sha256": 0}

    def count(kind, fn):
        def wrapped(*a, **k):
            counts[kind] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(marker_index, "read_marker", count("marker", marker_index.read_marker))
    monkeypatch.setattr(shards, "file_sha256", count("sha256", shards.file_sha256))
    return counts


def _urls(server, tmp_path, n=9):
    return write_urls(tmp_path, [server.add(f"p{i}.jpg", make_jpeg(200 + i, 150)) for i in range(n)])


def test_resume_reads_no_marker_and_hashes_no_input(server, s3, tmp_path, reads, monkeypatch):  # noqa: F811
    urls, out = _urls(server, tmp_path), s3.url("plan-resume")
    build(download_only(out, urls, shard_size=3))
    assert "_state/download/_index.json" in s3.keys("plan-resume")
    reads.update(marker=0, sha256=0)
    got: list[str] = []
    read_bytes = RemotePath.read_bytes
    monkeypatch.setattr(RemotePath, "read_bytes", lambda self: got.append(self.key) or read_bytes(self))
    again = build(download_only(out, urls, shard_size=3))  # a new build forgets what this process knew
    assert (again.reports[0].skipped, again.reports[0].done) == (3, 0)
    assert reads == {"marker": 0, "sha256": 0}
    # what is read: the lineage, the lease, the index; no input shard (its ETag is the MD5 of what
    # the build would write), no images shard, no marker
    assert not [k for k in got if "/input/" in k or "/images/" in k or "/part-" in k], got


def test_rewritten_marker_is_reread_and_decides_as_on_local_disk(server, s3, tmp_path, reads):  # noqa: F811
    urls = _urls(server, tmp_path)
    results = {}
    for kind, out in (("local", tmp_path / "local"), ("s3", s3.url("plan-stale"))):
        build(download_only(out, urls, shard_size=3))
        path = marker_path(as_path(out), "download", 1)  # a later run rewrote this marker (other config)
        path.write_text(json.dumps({**json.loads(path.read_text()), "config_hash": "from-another-run"}))
        reads.update(marker=0)
        res = build(download_only(out, urls, shard_size=3))
        results[kind] = (res.reports[0].done, res.reports[0].skipped)
        if kind == "s3":
            assert reads["marker"] == 1  # only the marker whose listing token no longer matches the index
    assert results["s3"] == results["local"] == (1, 2)


def test_redo_killed_before_its_marker_leaves_the_old_marker_true(server, s3, tmp_path, monkeypatch):  # noqa: F811
    """A redo killed between its attempt object and its marker: the old marker still describes the
    shard file (the new bytes went to an attempt object only); the next build removes that object
    and redoes the shard."""
    import hashlib

    import regionset.pipelines.core.shard_run as shard_run
    from regionset.pipelines.core.shards import attempts_folder, read_marker, shard_path

    urls, out = _urls(server, tmp_path, 3), s3.url("plan-redo")
    build(download_only(out, urls, shard_size=3))
    marker = marker_path(as_path(out), "download", 0)
    assert marker.exists()

    def killed(name):
        if name == "shard_written:download":
            raise KeyboardInterrupt("killed between the attempt object and its marker")

    monkeypatch.setattr(shard_run, "failpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        build(download_only(out, urls, shard_size=3, extra=["download.timeout=3"]))  # a config change: redo
    old = read_marker(as_path(out), "download", 0)
    assert old is not None  # the old marker stands, and it still tells the truth about the shard file
    assert hashlib.sha256(shard_path(as_path(out), "images", 0).read_bytes()).hexdigest() == old.output_sha256
    assert [k for k in s3.keys("plan-redo") if "/_attempts/" in k]  # the killed attempt's object
    monkeypatch.undo()
    res = build(download_only(out, urls, shard_size=3, extra=["download.timeout=3"]))
    assert res.reports[0].done == 1
    assert not list(attempts_folder(as_path(out)).rglob("*"))


def test_each_plan_lists_afresh_in_a_long_lived_process(server, s3, tmp_path):  # noqa: F811
    """As an orchestrator's worker plans shard after shard: a marker removed since is seen."""
    from regionset.pipelines.core.shard_run import plan_stage
    from regionset.pipelines.definition import build_steps

    urls, out = _urls(server, tmp_path, 6), s3.url("plan-fresh")
    cfg = download_only(out, urls, shard_size=3)
    build(cfg)
    stage = build_steps(cfg)[0]
    assert plan_stage(stage, as_path(out), [0, 1]) == []
    marker_path(as_path(out), "download", 1).unlink()
    assert [t.shard for t in plan_stage(stage, as_path(out), [0, 1])] == [1]
