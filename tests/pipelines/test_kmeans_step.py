"""The fit_kmeans global step: streamed uniform sample, files written, reuse/refit, shard-order independence."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.sample import uniform_sample
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture, write_region_shard


def _cfg(out, **kw) -> BuildConfig:
    return BuildConfig(output=str(out), kmeans=KMeansConfig(**{"levels": (4, 3), "sample_size": 600, **kw}))


def test_sample_is_uniform_bounded_and_batch_independent(tmp_path):
    write_mixture(tmp_path, 5, 200, d=8)
    a = uniform_sample(tmp_path, list(range(5)), ("object",), 300, seed=1)
    b = uniform_sample(tmp_path, list(range(5)), ("object",), 300, seed=1, batch_rows=7)
    c = uniform_sample(tmp_path, [4, 2, 0, 1, 3], ("object",), 300, seed=1, batch_rows=50)
    assert a.rows_seen == 1000 and len(a.ids) == 300 and a.x.shape == (300, 8)
    assert list(a.ids) == list(b.ids) == list(c.ids)
    assert np.array_equal(a.x, c.x)
    # uniform: every shard contributes about a fifth
    per_shard = np.bincount([int(i[1:]) // 200 for i in a.ids], minlength=5)
    assert per_shard.min() > 30
    other = uniform_sample(tmp_path, list(range(5)), ("object",), 300, seed=2)
    assert set(other.ids) != set(a.ids)
    assert uniform_sample(tmp_path, list(range(5)), ("text",), 300, seed=1).rows_seen == 0


def test_fit_writes_levels_and_json(tmp_path):
    write_mixture(tmp_path, 3, 200, d=8)
    summary = run_fit_kmeans(tmp_path, _cfg(tmp_path), [0, 1, 2])
    assert summary["reused"] is False and summary["leaves"] == 12
    meta = json.loads((tmp_path / "kmeans" / "kmeans.json").read_text())
    for k in ("levels", "sizes", "sample_size", "seed", "niter", "spherical", "faiss_version", "wall_seconds"):
        assert k in meta
    assert meta["sample_rows"] == 600 and meta["rows_seen"] == 600 and meta["sizes"] == [4, 12]
    assert np.load(tmp_path / "kmeans" / "level-1" / "centroids.npy").shape == (12, 8)
    tree = ClusterTree.load(tmp_path / "kmeans")
    assert tree.num_leaves == 12 and tree.meta["centroids_sha256"].startswith(summary["centroids_sha256"])


def test_frozen_tree_is_reused_until_refit_or_config_change(tmp_path):
    write_mixture(tmp_path, 3, 200, d=8)
    first = run_fit_kmeans(tmp_path, _cfg(tmp_path), [0, 1, 2])
    write_region_shard(tmp_path, 3, np.arange(600, 700), np.ones((100, 8), np.float32))
    again = run_fit_kmeans(tmp_path, _cfg(tmp_path), [0, 1, 2, 3])
    assert again["reused"] is True and again["centroids_sha256"] == first["centroids_sha256"]
    refit = run_fit_kmeans(tmp_path, _cfg(tmp_path, refit=True), [0, 1, 2, 3])
    assert refit["reused"] is False and refit["centroids_sha256"] != first["centroids_sha256"]
    changed = run_fit_kmeans(tmp_path, _cfg(tmp_path, levels=(2, 3)), [0, 1, 2, 3])
    assert changed["reused"] is False and changed["leaves"] == 6


def test_shard_layout_does_not_change_centroids_or_labels(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    x, _ = write_mixture(a, 4, 150, d=8)
    perm = np.random.default_rng(5).permutation(600)
    write_mixture(b, 4, 150, d=8, order=perm.tolist())  # same regions, other shards
    cfg = _cfg(a, sample_size=400)
    run_fit_kmeans(a, cfg, [0, 1, 2, 3])
    run_fit_kmeans(b, replace(cfg, output=str(b)), [3, 1, 0, 2])
    ta, tb = ClusterTree.load(a / "kmeans"), ClusterTree.load(b / "kmeans")
    assert ta.meta["centroids_sha256"] == tb.meta["centroids_sha256"]
    pa_, _ = ta.assign(x)
    pb, _ = tb.assign(x)
    assert np.array_equal(pa_, pb)


def test_no_embeddings_is_a_clear_skip(tmp_path):
    summary = run_fit_kmeans(tmp_path, _cfg(tmp_path), [0, 1])
    assert "no embeddings" in summary["skipped"]
    assert not (tmp_path / "kmeans").exists()


def test_progress_reports_sample_levels_and_refinement(tmp_path):
    from regionset.pipelines.kmeans.fit import fit_tree

    write_mixture(tmp_path, 4, 150, d=8)
    calls: list[tuple] = []

    def record(phase, done, total, rows=0):
        calls.append((phase, done, total, rows))

    sample = uniform_sample(tmp_path, [0, 1, 2, 3], ("object",), 400, seed=0, batch_rows=50, progress=record)
    fit_tree(sample.x, KMeansConfig(levels=(4, 3), refine_iters=2), record)
    by_phase: dict[str, list[tuple]] = {}
    for phase, done, total, rows in calls:
        by_phase.setdefault(phase, []).append((done, total, rows))
    assert list(by_phase) == ["sample", "level 0", "level 1", "refine"]
    # sample: shards finished in order, rows seen so far, ending at every shard and row
    assert [d for d, _, _ in by_phase["sample"]] == [1, 2, 3, 4]
    assert by_phase["sample"][-1] == (4, 4, 600)
    assert by_phase["level 0"] == [(1, 1, 0)]  # the root is split once
    assert [d for d, t, _ in by_phase["level 1"]] == [1, 2, 3, 4] and by_phase["level 1"][-1][1] == 4
    assert by_phase["refine"] == [(0, 2, 0), (1, 2, 400), (2, 2, 800)]


def test_build_shows_a_bar_per_fit_phase(tmp_path, capsys):
    write_mixture(tmp_path, 2, 100, d=8)
    run_fit_kmeans(tmp_path, replace(_cfg(tmp_path, sample_size=150), progress=True), [0, 1])
    err = capsys.readouterr().err
    for phase in ("fit_kmeans sample", "fit_kmeans level 0", "fit_kmeans level 1", "fit_kmeans refine"):
        assert phase in err, err
    assert "rows/s" in err
