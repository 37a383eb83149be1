"""assign refuses to run on a tree it cannot use (issue 32): missing, unreadable after retries, or not the
tree the driver planned. Before the fix each of these committed every object region unlabelled under a
marker carrying the planned centroid hash, so no later build redid the shard."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from regionset.models import kmeans_index
from regionset.models.kmeans_index import KMEANS_JSON, TreeReadError, read_meta
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import plan_stage, run_shard
from regionset.pipelines.core.shards import read_marker
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.stages.assign import AssignConfig, AssignStage, TreeMismatch
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture, write_region_shard

KM = KMeansConfig(levels=(3, 2), sample_size=200)


def _fitted(out, refit=False, seed=0):
    km = KMeansConfig(levels=(3, 2), sample_size=200, refit=refit, seed=seed)
    run_fit_kmeans(out, BuildConfig(kmeans=km), [0])


def _plan(out):
    """The driver's side: the stage and its planned task (the hash of the tree the driver sees)."""
    stage = AssignStage(AssignConfig(kmeans_dir=str(out / "kmeans")))
    [task] = plan_stage(stage, Output.of(out), [0])
    return stage, task


def test_tree_gone_on_the_worker_is_an_error_naming_path_and_hash(tmp_path):
    write_mixture(tmp_path, 1, 60, d=8, seed=1)
    _fitted(tmp_path)
    stage, task = _plan(tmp_path)
    planned = json.loads((tmp_path / "kmeans" / KMEANS_JSON).read_text())["centroids_sha256"]
    (tmp_path / "kmeans" / KMEANS_JSON).unlink()  # the worker does not see the driver's tree
    worker = pickle.loads(pickle.dumps(stage))  # shipped to a worker as the executors do
    with pytest.raises(TreeMismatch) as e:
        run_shard(worker, Output.of(tmp_path), task)
    assert str(tmp_path / "kmeans") in str(e.value) and planned[:12] in str(e.value)
    assert read_marker(tmp_path, "assign", 0) is None  # nothing committed


def test_a_different_tree_than_planned_is_an_error(tmp_path):
    write_mixture(tmp_path, 1, 60, d=8, seed=1)
    _fitted(tmp_path)
    stage, task = _plan(tmp_path)
    _fitted(tmp_path, refit=True, seed=7)  # refit between planning and the worker's run
    with pytest.raises(TreeMismatch, match="planned"):
        run_shard(AssignStage(stage.config), Output.of(tmp_path), task)
    assert read_marker(tmp_path, "assign", 0) is None


def test_no_tree_with_regions_to_cluster_is_an_error(tmp_path):
    write_mixture(tmp_path, 1, 60, d=8, seed=1)  # object regions with embeddings, never fitted
    stage, task = _plan(tmp_path)
    with pytest.raises(TreeMismatch, match="no k-means tree"):
        run_shard(AssignStage(stage.config), Output.of(tmp_path), task)
    assert read_marker(tmp_path, "assign", 0) is None


def test_unreadable_tree_is_an_error_after_bounded_retries(tmp_path, monkeypatch):
    monkeypatch.setattr(kmeans_index, "META_RETRY_WAIT_S", 0.0)
    (tmp_path / "kmeans" / KMEANS_JSON).mkdir(parents=True)  # a real, persistent read error (EISDIR)
    with pytest.raises(TreeReadError, match=str(tmp_path / "kmeans" / KMEANS_JSON)):
        read_meta(tmp_path / "kmeans")
    write_mixture(tmp_path, 1, 60, d=8, seed=1)
    with pytest.raises(TreeReadError):
        AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans"))).config_hash(tmp_path)


class FakeFlakyRoot:
    """A tree root whose ``kmeans.json`` fails to read ``fails`` times, then reads (a transient error)."""

    def __init__(self, text: str, fails: int) -> None:
        self.text, self.fails, self.reads = text, fails, 0

    def __truediv__(self, name: str) -> FakeFlakyRoot:
        return self

    def read_text(self) -> str:
        self.reads += 1
        if self.reads <= self.fails:
            raise ConnectionError("connection reset by peer")
        return self.text


def test_a_transient_read_error_is_retried_not_taken_for_no_tree(monkeypatch):
    monkeypatch.setattr(kmeans_index, "META_RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(kmeans_index, "as_path", lambda p: p)
    root = FakeFlakyRoot('{"centroids_sha256": "abc"}', fails=kmeans_index.META_READ_TRIES - 1)
    assert read_meta(root) == {"centroids_sha256": "abc"}
    always = FakeFlakyRoot("{}", fails=99)
    with pytest.raises(TreeReadError, match="ConnectionError"):
        read_meta(always)
    assert always.reads == kmeans_index.META_READ_TRIES


def test_the_planned_tree_runs_after_shipping(tmp_path):
    write_mixture(tmp_path, 1, 60, d=8, seed=1)
    _fitted(tmp_path)
    stage, task = _plan(tmp_path)
    marker = run_shard(pickle.loads(pickle.dumps(stage)), Output.of(tmp_path), task)
    assert marker.counters["labelled:cluster"] == 60


def test_no_tree_and_no_object_embeddings_still_labels_text(tmp_path):
    # fit_kmeans skips the fit when no region has an embedding: assign labels the text regions
    write_region_shard(tmp_path, 0, np.arange(3), np.zeros((3, 8), np.float32),
                       texts={100: "STOP sign"}, skip_embedding={0, 1, 2})
    stage, task = _plan(tmp_path)
    marker = run_shard(pickle.loads(pickle.dumps(stage)), Output.of(tmp_path), task)
    assert marker.counters["labelled:tokens"] == 1 and "labelled:cluster" not in marker.counters
