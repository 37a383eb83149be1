"""``Output``: made once from the config's ``output``, handed down, pickled as its URL."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from regionset.common.storage import RemotePath, as_path, is_remote, worker_out
from regionset.pipelines.build import build
from regionset.pipelines.core.output import Output, _output_in_worker
from regionset.pipelines.core.shards import marker_path, shard_path
from tests.conftest import make_jpeg
from tests.helpers import download_only, table_hash, write_urls
from tests.pipelines.snapshots import markers


def test_local_output_is_absolute_and_pickles_as_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Output("rel/out")
    assert out.root == tmp_path / "rel" / "out" and out.url == str(tmp_path / "rel" / "out")
    assert out.url == worker_out("rel/out") and not out.is_remote and not is_remote(out)
    assert out.__reduce__() == (_output_in_worker, (out.url, None))  # no lock held: no fence shipped
    again = pickle.loads(pickle.dumps(out))
    assert isinstance(again, Output) and again == out and again.url == out.url
    assert os.fspath(out) == str(out) == out.url and Path(out) == out.root
    assert Output(f"file://{tmp_path}/x").root == tmp_path / "x"


def test_memory_output_pickles_as_its_url_without_its_caches():
    out = Output("memory://bucket/prefix")
    assert out.is_remote and is_remote(out) and isinstance(out.root, RemotePath)
    assert out.url == "memory://bucket/prefix" and out.fs is out.root.fs
    out.markers("download").known[0] = ("tok", None)
    again = pickle.loads(pickle.dumps(out))
    assert again == out and again.url == out.url
    assert again.markers("download").known == {}  # caches stay in the process that made them
    with pytest.raises(TypeError):
        os.fspath(out)


def test_of_is_idempotent_and_accepts_paths_and_strings(tmp_path):
    out = Output(tmp_path / "o")
    assert Output.of(out) is out
    assert Output.of(tmp_path / "o") == out == Output.of(str(tmp_path / "o"))
    remote = Output.of(RemotePath("memory://b/p"))
    assert remote == Output.of("memory://b/p") and as_path(remote) is remote.root


def test_joins_and_layout(tmp_path):
    out = Output(tmp_path)
    assert out / "images" == tmp_path / "images" == out.table("images")
    assert out.state == tmp_path / "_state"
    assert out.shard("images", 3) == shard_path(tmp_path, "images", 3)
    assert out.marker("download", 3) == marker_path(tmp_path, "download", 3)
    with pytest.raises(ValueError):
        out.shard("../escape", 0)
    remote = Output("memory://b/p")
    assert remote / "images" == RemotePath("memory://b/p/images")
    assert remote.shard("images", 1) == RemotePath("memory://b/p/images/part-00001.parquet")


def test_marker_index_is_reused_per_stage():
    out = Output("memory://b/markers")
    assert out.markers("download") is out.markers("download")
    assert out.markers("download") is not out.markers("embed")
    assert out.markers("download") is not Output("memory://b/markers").markers("download")  # per Output


def test_lock_is_the_build_lock(tmp_path):
    from regionset.pipelines.core.lease import LeaseLock
    from regionset.pipelines.core.lock import BuildLock

    lock = Output(tmp_path).lock()
    assert type(lock) is BuildLock and lock.path == tmp_path / "_state" / "build.lock"
    assert type(Output("memory://b/lock").lock()) is LeaseLock


def test_local_and_memory_builds_still_match(server, tmp_path, monkeypatch):
    pytest.importorskip("fsspec")
    monkeypatch.setenv("REGIONSET_CATALOG_DIR", str(tmp_path / "catalogs"))
    urls = write_urls(tmp_path, [server.add(f"o{i}.jpg", make_jpeg(210 + 7 * i, 140)) for i in range(5)])
    local = build(download_only(tmp_path / "local", urls))
    remote = build(download_only("memory://regionset-output/out", urls))
    assert isinstance(local.out, Output) and isinstance(remote.out, Output) and remote.out.is_remote
    assert remote.shards == local.shards
    got = tmp_path / "got"
    for obj in remote.out.root.rglob("*"):
        dest = got / obj.relative_to(remote.out.root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(obj.read_bytes())
    for folder in ("input", "images"):
        assert table_hash(got, folder) == table_hash(tmp_path / "local", folder)
    assert markers(got) == markers(tmp_path / "local")
