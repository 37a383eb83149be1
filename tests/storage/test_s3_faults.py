"""Builds through a misbehaving object store (tests/faultproxy.py in front of the loopback S3 server).

The issue's failure first: a PUT of a ``hashes/`` object that reaches the store cut to 0 bytes and is
acknowledged (a store that checks no checksum) once stopped ``group_duplicates`` with
``ArrowInvalid: Parquet file size is 0 bytes``; now the PUT is verified and redone. Then builds with
5 % of all requests disturbed by every kind of fault end equal to a clean build: the same tables
and markers, the same objects (no orphans), every shard and marker stored whole exactly once, and
the retries by reason in the summary and the run record. A fault that persists is one line, exit 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from regionset.common import store_retry
from regionset.pipelines.build import build, print_summary
from regionset.pipelines.config import load_config
from regionset.pipelines.tools.demo.run import demo_overrides, write_url_list
from regionset.pipelines.tools.demo.server import LoopbackServer
from tests.faultproxy import KINDS, FaultProxy
from tests.helpers import table_hash
from tests.pipelines.snapshots import markers, other_files
from tests.s3server import BUCKET, s3  # noqa: F401 (fixture)

FAST_STEPS = "steps=[download,dedup,group_duplicates]"  # the path: hashes read by group_duplicates


@pytest.fixture(scope="module")
def urls(tmp_path_factory) -> Iterator[Path]:
    """Six demo images and two bad URLs on a loopback web server."""
    with LoopbackServer() as server:
        yield write_url_list(server, tmp_path_factory.mktemp("faults"), limit=6)


@contextmanager
def through(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """Point the storage client at the proxy while the block runs (a new client: the env changed)."""
    saved = os.environ["AWS_ENDPOINT_URL"]
    os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
    try:
        with proxy:
            yield proxy
    finally:
        os.environ["AWS_ENDPOINT_URL"] = saved


def _cfg(s3, prefix: str, urls: Path, extra: list[str]):  # noqa: F811
    return load_config(None, [*demo_overrides(s3.url(prefix), urls, 4), "progress=false", *extra])


def _snapshot(s3, prefix: str, to: Path) -> dict[str, object]:  # noqa: F811
    got = s3.download(prefix, to)
    folders = sorted({p.parent.relative_to(got).as_posix() for p in got.rglob("part-*.parquet")} - {"."})
    keys = sorted("_state/runs/RUN.json" if k.startswith("_state/runs/") else k for k in s3.keys(prefix)
                  if k != "_state/build.lock")
    return {"tables": {d: table_hash(got, d) for d in folders if not d.startswith("_")},
            "markers": markers(got), "files": other_files(got), "keys": keys}


def _committed(proxy: FaultProxy, prefix: str) -> dict[str, int]:
    """Shard objects and markers stored whole, by key under ``prefix``: how many times each."""
    root = f"/{BUCKET}/{prefix}/"
    return {p.removeprefix(root): n for p, n in proxy.stored.items()
            if p.startswith(root) and (p.endswith(".parquet") or "/_state/" in p and "/part-" in p)}


def _clean_and_faulty(s3, urls, tmp_path, name: str, extra: list[str], seed: int):  # noqa: F811
    with through(FaultProxy(s3.endpoint, rate=0.0)) as clean_px:
        build(_cfg(s3, f"{name}-clean", urls, extra))
    with through(FaultProxy(s3.endpoint, rate=0.05, kinds=KINDS, seed=seed, delay=0.2)) as px:
        result = build(_cfg(s3, f"{name}-faulty", urls, extra))
    clean = _snapshot(s3, f"{name}-clean", tmp_path / "clean")
    faulty = _snapshot(s3, f"{name}-faulty", tmp_path / "faulty")
    for part in ("tables", "markers", "files", "keys"):
        assert faulty[part] == clean[part], part
    print(f"{name}: {px.requests} requests, faults {dict(px.injected)}, retries {result.store_retries}")  # -s shows it
    committed = _committed(px, f"{name}-faulty")
    assert committed == _committed(clean_px, f"{name}-clean") and set(committed.values()) == {1}
    return result, px


def test_a_put_cut_to_nothing_is_redone_not_committed(s3, urls, tmp_path):  # noqa: F811
    """The issue's failure: the first PUT of a hashes object reaches the store empty."""
    with through(FaultProxy(s3.endpoint, rate=1.0, kinds=("short_put",), keep=0.0, match="/hashes/", limit=1)) as px:
        result = build(_cfg(s3, "cut", urls, [FAST_STEPS]))
    assert px.injected == {"short_put": 1}
    assert result.store_retries.get("short_write", 0) >= 1
    build(_cfg(s3, "uncut", urls, [FAST_STEPS]))
    want, got = _snapshot(s3, "uncut", tmp_path / "a"), _snapshot(s3, "cut", tmp_path / "b")
    assert got["tables"] == want["tables"] and got["markers"] == want["markers"] and got["keys"] == want["keys"]


def test_five_percent_faults_fast(s3, urls, tmp_path, capsys):  # noqa: F811
    """download, dedup, group_duplicates through 5 % faults of every kind: equal to a clean build."""
    result, px = _clean_and_faulty(s3, urls, tmp_path, "fast", [FAST_STEPS], seed=3)
    assert sum(px.injected.values()) >= 3, px.injected
    assert result.store_retries and set(result.store_retries) <= set(store_retry.REASONS)
    runs = [json.loads(p.read_text()) for p in (tmp_path / "faulty" / "_state" / "runs").glob("*.json")]
    recorded = runs[0]["store_retries"]  # all but the retries of the catalog refresh after it
    assert recorded and all(n <= result.store_retries[k] for k, n in recorded.items())
    print_summary(result)
    shown = capsys.readouterr().out
    assert "object-store retries" in shown and all(reason in shown for reason in result.store_retries)


@pytest.mark.slow
def test_five_percent_faults_full_pipeline(s3, urls, tmp_path):  # noqa: F811
    """Every step of the demo pipeline through 5 % faults of every kind: equal to a clean build."""
    result, px = _clean_and_faulty(s3, urls, tmp_path, "full", [], seed=1)
    assert set(px.injected) == set(KINDS), px.injected
    assert result.store_retries


def test_a_fault_that_persists_is_one_line_and_exit_1(s3, urls, monkeypatch, capsys):  # noqa: F811
    from regionset.pipelines.cli import main

    monkeypatch.setattr(store_retry, "ATTEMPTS", 2)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own attempts per request (default 5)
    with through(FaultProxy(s3.endpoint, rate=1.0, kinds=("server_error",), match="/images/part-00000")):
        code = main(["build", *demo_overrides(s3.url("stuck"), urls, 4), "progress=false", "steps=[download]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("regionset build: error: ") and "still failing after 2 attempts (server_error)" in err[0]
