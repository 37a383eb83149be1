"""The whole pipeline with ``output: s3://…`` (a real S3-protocol server on loopback, moto).

Global steps (group_duplicates, fit_kmeans, semdedup) and the steps reading their files (assign,
pack) commit without rename: data objects under their final names, the completion object last.
Parity with a local-disk build on the local, ray and spark executors; kill -9 during the k-means fit
and assign, then resume; the catalog reads only committed objects.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.tools.demo.run import demo_overrides
from regionset.schemas import TABLE_DIRS
from tests.helpers import table_hash
from tests.pipelines.snapshots import markers, other_files
from tests.pipelines.test_executor_parity import _executor, _overrides, corpus  # noqa: F401 (fixture)
from tests.s3server import s3  # noqa: F401 (fixture)

FOLDERS = sorted({d for dirs in TABLE_DIRS.values() for d in dirs})
EXTRA_TABLES = ("cluster_tree", "clusters", "vocab_tokens", "stage_state")


def _snapshot(got: Path) -> dict[str, object]:
    """Tables (sorted content hashes), markers without timings, other files (the k-means tree)."""
    return {"tables": {d: table_hash(got, d) for d in FOLDERS if (got / d).is_dir()},
            "markers": markers(got), "files": other_files(got)}


def _counts(out: str | Path) -> dict[str, int]:
    """Row counts of every catalog table and view (the catalog is rebuilt first)."""
    from regionset.pipelines.core.catalog import build_catalog, connect

    build_catalog(out)
    con = connect(out)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (*TABLE_DIRS, *EXTRA_TABLES)}
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_disk(corpus):  # noqa: F811
    """The full pipeline (semdedup included) on local disk with the local executor."""
    root, urls = corpus
    out = root / "disk"
    build(load_config(None, _overrides(out, urls)))
    return _snapshot(out), _counts(out)


def _assert_matches(snap: dict[str, object], counts: dict[str, int], want: tuple[dict, dict]) -> None:
    for part in ("tables", "markers", "files"):
        assert snap[part] == want[0][part], part
    assert counts == want[1]
    assert {"labels", "train", "duplicates", "region_duplicates"} <= set(snap["tables"])
    assert "kmeans/kmeans.json" in snap["files"] and counts["train"] > 0 and counts["cluster_tree"] > 0


@pytest.mark.parametrize("name", ["local", pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_full_pipeline_on_s3_matches_local_disk(name, corpus, local_disk, s3, tmp_path):  # noqa: F811
    if name != "local" and importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed")
    root, urls = corpus
    prefix = f"full-{name}"
    cfg = load_config(None, _overrides(s3.url(prefix), urls))
    executor = _executor(name)
    try:
        build(cfg, executor=executor)
        again = build(cfg, executor=executor)  # every marker and completion object is found
    finally:
        executor.close()
    assert all(r.done == 0 for r in again.reports), again.reports
    assert again.globals["fit_kmeans"]["reused"] and again.globals["group_duplicates"]["reused"]
    got = s3.download(prefix, tmp_path / prefix)
    _assert_matches(_snapshot(got), _counts(s3.url(prefix)), local_disk)
    assert not any(k.startswith(".kmeans_fit/") or k.endswith(".tmp") for k in s3.keys(prefix))


def _untimed_tree(files: dict[str, str], out: Path) -> dict[str, object]:
    """``other_files`` with kmeans.json as its content less how many parents this run refitted."""
    meta = json.loads((out / "kmeans" / "kmeans.json").read_text())
    for k in ("parents_refitted", "created_at", "wall_seconds", "fit_seconds"):
        meta.pop(k)
    return {**files, "kmeans/kmeans.json": meta}


def _cli(*args: str, failpoint: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "REGIONSET_FAILPOINT": failpoint, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_kill_during_fit_and_assign_then_resume(corpus, s3, tmp_path):  # noqa: F811
    """per_parent fit (partitioned sample + per-parent completion objects), killed after a parent,
    after the tree's arrays (before kmeans.json) and mid-assign: each resume ends equal to a local build."""
    root, urls = corpus
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump({"progress": False, "executor": {"processes": 1}}))
    extra = ["kmeans.fit=per_parent", "steps=[download,detect,ocr,embed,fit_kmeans,assign]"]
    ref = tmp_path / "ref"  # built the same way (a CLI process, same thread budget), on local disk
    done = _cli("build", str(config), *demo_overrides(ref, urls, 4), *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    out = s3.url("killed")
    args = ["build", str(config), *demo_overrides(out, urls, 4), *extra]

    first = _cli(*args, failpoint="kmeans:parent_fitted")
    assert first.returncode == -9, first.stderr[-2000:]
    keys = s3.keys("killed")
    assert sum(k.startswith(".kmeans_fit/parent-") for k in keys) == 1
    assert not any(k.startswith("kmeans/") for k in keys)

    second = _cli(*args, failpoint="kmeans:fitted")  # arrays written, kmeans.json (the commit) not yet
    assert second.returncode == -9, second.stderr[-2000:]
    keys = s3.keys("killed")
    assert "kmeans/level-0/centroids.npy" in keys and "kmeans/kmeans.json" not in keys
    assert _counts(out)["cluster_tree"] == 0  # readers trust only a committed tree

    third = _cli(*args, failpoint="mid_shard:assign")
    assert third.returncode == -9, third.stderr[-2000:]
    last = _cli(*args)
    assert last.returncode == 0, last.stderr[-2000:]
    got = s3.download("killed", tmp_path / "got")
    want = _snapshot(ref)
    snap = _snapshot(got)
    assert snap["tables"] == want["tables"] and snap["markers"] == want["markers"]
    assert _untimed_tree(snap["files"], got) == _untimed_tree(want["files"], ref)
    assert _counts(out) == _counts(ref)
    assert not any(k.startswith(".kmeans_fit/") for k in s3.keys("killed"))


def test_uncommitted_global_outputs_are_never_read_and_cleaned(corpus, s3, tmp_path):  # noqa: F811
    """A duplicates object without group_duplicates' state object and a region-duplicates object
    without semdedup's: the catalog ignores them and the next build deletes them."""
    from regionset.common.storage import as_path
    from regionset.pipelines.core.catalog import committed_files
    from regionset.pipelines.core.shards import shard_path

    root, urls = corpus
    out = s3.url("orphans")
    steps = "steps=[download,dedup,group_duplicates]"
    build(load_config(None, demo_overrides(out, urls, 4) + ["progress=false", steps]))
    dups = committed_files(as_path(out), "duplicates")
    assert len(dups) == 2
    as_path(out + "/_state/group_duplicates.json").unlink()  # as if killed while regrouping
    orphan = shard_path(as_path(out), "region_duplicates", 9)
    orphan.write_bytes(b"not parquet")  # semdedup never committed here
    assert committed_files(as_path(out), "duplicates") == committed_files(as_path(out), "region_duplicates") == []
    assert _counts(out)["region_duplicates"] == 0  # the catalog does not read the orphan
    again = build(load_config(None, demo_overrides(out, urls, 4) + ["progress=false", steps]))
    assert not orphan.exists() and again.globals["group_duplicates"]["regrouped_shards"] == 2
    assert committed_files(as_path(out), "duplicates") == dups
