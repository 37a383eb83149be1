"""The whole demo pipeline with every shard of every stage attempted twice (the duplicate-attempt test
failpoint, ``REGIONSET_DUPLICATE_ATTEMPT=*``): tables, markers, other files and catalog identical to a
clean build, every marker written by the second attempt, and no attempt object left behind.
"""

from __future__ import annotations

import os

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.core.failpoints import DUPLICATE_ENV
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import DUPLICATE_TIMING
from regionset.pipelines.core.shards import ATTEMPTS_DIR, STATE_DIR, attempts_folder, read_marker
from regionset.pipelines.tools.demo.run import demo_overrides, write_url_list
from regionset.pipelines.tools.demo.server import LoopbackServer
from regionset.pipelines.tools.status import stage_names
from tests.pipelines.snapshots import assert_same, snapshot
from tests.s3server import s3  # noqa: F401 (fixture)

N_IMAGES, SHARD_SIZE = 4, 3  # 6 URLs with the two bad ones: 2 shards


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    root = tmp_path_factory.mktemp("dupbuild")
    with LoopbackServer() as server:
        yield write_url_list(server, root / "urls", limit=N_IMAGES)


def _build(out, urls) -> None:
    build(load_config(None, [*demo_overrides(out, urls, SHARD_SIZE), "progress=false"]))


def test_every_shard_attempted_twice_builds_what_a_clean_build_does(urls, tmp_path, monkeypatch):
    _build(tmp_path / "clean", urls)
    monkeypatch.setenv(DUPLICATE_ENV, "*")
    _build(tmp_path / "twice", urls)
    monkeypatch.delenv(DUPLICATE_ENV)
    twice = tmp_path / "twice"
    assert_same(snapshot(twice), snapshot(tmp_path / "clean"))
    markers = sorted((twice / STATE_DIR).glob("*/part-*.json"))
    assert markers
    for f in markers:
        m = read_marker(twice, f.parent.name, int(f.stem.split("-")[1]))
        assert m.timings.get(DUPLICATE_TIMING) == 1, f"{f}: not written by the second attempt"
    assert not [p for p in attempts_folder(twice).rglob("*") if p.is_file()]  # no orphan attempt object
    assert ATTEMPTS_DIR not in stage_names(Output(twice))  # `regionset status` lists stages, not attempts
    assert not os.environ.get(DUPLICATE_ENV)


def test_every_shard_attempted_twice_on_s3(s3, urls, tmp_path, monkeypatch):  # noqa: F811
    """The same on the S3 test server (download, dedup, group_duplicates): equal tables and markers,
    the same object keys as a clean build (no orphan), each shard file and marker stored once."""
    from tests.faultproxy import FaultProxy
    from tests.storage.test_s3_faults import FAST_STEPS, _committed, _snapshot, through

    def run(prefix: str) -> FaultProxy:
        with through(FaultProxy(s3.endpoint, rate=0.0)) as px:
            build(load_config(None, [*demo_overrides(s3.url(prefix), urls, SHARD_SIZE), "progress=false",
                                     FAST_STEPS]))
        return px

    clean = run("dup-clean")
    monkeypatch.setenv(DUPLICATE_ENV, "*")
    twice = run("dup-twice")
    monkeypatch.delenv(DUPLICATE_ENV)
    want, got = _snapshot(s3, "dup-clean", tmp_path / "a"), _snapshot(s3, "dup-twice", tmp_path / "b")
    for part in ("tables", "markers", "files", "keys"):
        assert got[part] == want[part], part
    assert not [k for k in got["keys"] if "_attempts" in k]
    stored = {k: n for k, n in _committed(twice, "dup-twice").items() if "_attempts" not in k}
    assert stored == {k: n for k, n in _committed(clean, "dup-clean").items() if "_attempts" not in k}
    assert set(stored.values()) == {1}  # the loser never wrote a shard file or a marker
    print(f"requests: clean {clean.requests}, every shard twice {twice.requests}")  # -s shows it
