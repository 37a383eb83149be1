"""assign: cluster paths and distances, token labels and drops, incremental assignment, refit."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.shards import file_sha256, shard_path
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.schemas import LABELS
from regionset.stages.assign import AssignConfig, AssignStage
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, write_mixture, write_region_shard

KM = KMeansConfig(levels=(4, 3), sample_size=500)


def _assign(out, shards):
    stage = AssignStage(AssignConfig(kmeans_dir=str(out / "kmeans")))
    return LocalExecutor(show_progress=False).run_stage(stage, out, shards)


def _labels(out, shard):
    return pq.read_table(shard_path(out, LABELS, shard)).to_pylist()


def test_labels_are_exact_nearest_leaf_with_tokens_and_drops(tmp_path):
    x, _ = gaussian_mixture(40, k=4, d=8, seed=1)
    texts = {100: "STOP sign", 101: "", 102: "!!!", 103: "open 24 hours"}
    write_region_shard(tmp_path, 0, np.arange(40), x, texts=texts, skip_embedding={5})
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KM), [0])
    report = _assign(tmp_path, [0])
    assert report.counters["drop:no_embedding"] == 1 and report.counters["drop:empty_text"] == 2
    assert report.counters["labelled:cluster"] == 39 and report.counters["labelled:tokens"] == 2
    rows = {r["region_id"]: r for r in _labels(tmp_path, 0)}
    assert "r5" not in rows and "r101" not in rows and "r102" not in rows
    tree = ClusterTree.load(tmp_path / "kmeans")
    xs = x / np.linalg.norm(x, axis=1, keepdims=True)
    d2 = ((xs[:, None, :] - tree.centroids[-1][None]) ** 2).sum(-1)
    for i in range(40):
        if i == 5:
            continue
        r = rows[f"r{i}"]
        assert r["source"] == "object" and r["token_ids"] is None
        assert r["cluster_id"] == r["cluster_path"][-1] == int(d2[i].argmin())
        assert tree.parents[1][r["cluster_id"]] == r["cluster_path"][0]
        # embeddings are stored as fp16, so the distance matches to fp16 precision
        assert abs(r["distance"] - d2[i].min()) < 1e-2
    stop = rows["r100"]
    assert stop["cluster_id"] is None and stop["source"] == "text"
    assert stop["token_ids"][:2] == [1691, 2292] and stop["token_ids"][2:] == [-1] * 8


def test_incremental_build_assigns_only_new_shards(tmp_path):
    write_mixture(tmp_path, 10, 60, d=8, seed=3)
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KM), list(range(10)))
    first = _assign(tmp_path, list(range(10)))
    assert first.done == 10
    before = {s: file_sha256(shard_path(tmp_path, LABELS, s)) for s in range(10)}
    x, _ = gaussian_mixture(300, k=20, d=8, seed=4)
    for s in range(10, 15):  # new shards: new regions, new ids
        idx = np.arange(1000 + 60 * s, 1000 + 60 * s + 60)
        write_region_shard(tmp_path, s, idx, x[(s - 10) * 60:(s - 9) * 60])
    summary = run_fit_kmeans(tmp_path, BuildConfig(kmeans=KM), list(range(15)))
    assert summary["reused"] is True
    second = _assign(tmp_path, list(range(15)))
    assert (second.done, second.skipped) == (5, 10)
    assert before == {s: file_sha256(shard_path(tmp_path, LABELS, s)) for s in range(10)}
    assert all(len(_labels(tmp_path, s)) == 60 for s in range(10, 15))
    # a refit changes the centroids' hash: every shard is assigned again
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KMeansConfig(levels=(4, 3), sample_size=500, refit=True)),
               list(range(15)))
    third = _assign(tmp_path, list(range(15)))
    assert third.done == 15


def test_same_seed_same_labels(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        write_mixture(out, 3, 80, d=8, seed=6)
        run_fit_kmeans(out, BuildConfig(kmeans=KM), [0, 1, 2])
        _assign(out, [0, 1, 2])
    for s in range(3):
        assert _labels(a, s) == _labels(b, s)


def test_stage_pickles_as_config_and_hash_ignores_tree_location(tmp_path):
    import pickle

    s1 = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "x" / "kmeans")))
    s2 = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "y" / "kmeans")))
    assert s1.config_hash(tmp_path) == s2.config_hash(tmp_path)
    assert pickle.loads(pickle.dumps(s1)).config == s1.config


def test_beam_search_marker_counters_and_status(tmp_path):
    from regionset.pipelines.core.shards import read_marker
    from regionset.pipelines.tools.status import beam_check

    write_mixture(tmp_path, 2, 300, d=8, k=30, seed=5)
    km = KMeansConfig(levels=(8, 6), sample_size=600)
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=km), [0, 1])
    exact = _assign(tmp_path, [0, 1])  # auto on a 48-leaf tree: exact
    assert exact.counters["search:exact"] == 600 and "beam_check:rows" not in exact.counters
    exact_rows = {r["region_id"]: r for s in (0, 1) for r in _labels(tmp_path, s)}
    stage = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans"), search="beam", beam=2, check_rows=100))
    beam = LocalExecutor(show_progress=False).run_stage(stage, tmp_path, [0, 1])
    assert beam.done == 2  # a new search is a new config: every shard is labelled again
    c = beam.counters
    assert c["search:beam"] == 600 and c["beam_check:rows"] == 200
    same = sum(r["cluster_id"] == exact_rows[r["region_id"]]["cluster_id"]
               for s in (0, 1) for r in _labels(tmp_path, s))
    assert 0.8 * 600 <= same <= 600
    marker = read_marker(tmp_path, "assign", 0)  # what `regionset status` sums up
    assert marker.counters["search:beam"] == 300 and marker.counters["beam_check:rows"] == 100
    # bench/scale.py's rows per CPU-second; kept out of the counters, which equal builds share
    assert set(marker.timings) == {"cpu_ms:search", "cpu_ms:check", "cpu_ms:stage"}
    assert not any(k.startswith("cpu_ms:") for k in marker.counters)
    check = beam_check(c)
    assert check["rows"] == 200 and 80 <= check["same_leaf_pct"] <= 100
    assert 1.0 <= check["inertia_ratio"] < 1.2
    # a beam that keeps every level-0 node is the exact search
    full = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans"), search="beam", beam=8))
    again = LocalExecutor(show_progress=False).run_stage(full, tmp_path, [0, 1])
    assert again.counters["search:exact"] == 600
    assert {r["region_id"]: r for s in (0, 1) for r in _labels(tmp_path, s)} == exact_rows
