"""The ``regionset`` DAG under a real Airflow: scheduler, DAG processor and API server on PostgreSQL,
LocalExecutor (``tests/dags/scheduler.py``). Triggered with ``airflow dags trigger``, polled to
success: its tables equal ``regionset build`` of the same config, a second trigger changes nothing,
a task killed once (a test fault) is retried by Airflow and the run ends equal, and a committed build
updates the ``train/`` Asset, which starts the ``regionset_train`` DAG by itself."""

from __future__ import annotations

import json
import time

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from tests.dags.test_assets import tiny_training
from tests.dags.test_regionset_dag import demo_config  # noqa: F401  (the fixture: 4 images, 2 shards)
from tests.pipelines.snapshots import assert_same, markers, snapshot

# In the default set (the real scheduler is what a deployment runs): a triggered run takes ~2 min on
# two cores (every task a fresh interpreter); measured times in docs/cluster.md "Airflow".
pytestmark = [pytest.mark.airflow]
RUN_SECONDS = 1200.0


def _run(af, conf: dict) -> str:
    run_id = af.trigger("regionset", conf)
    state = af.wait("regionset", run_id, RUN_SECONDS)
    assert state == "success", af.failed_logs("regionset", run_id)
    print(f"run {run_id}: {af.timings[run_id]:.1f} s")
    return run_id


def _cli_build(config, out) -> dict:
    build(load_config(str(config), [f"output={out}", "progress=false"]))
    return snapshot(out)


def test_triggered_run_equals_regionset_build_and_a_second_trigger_changes_nothing(
        airflow_local, demo_config, server, tmp_path):  # noqa: F811
    conf = {"config_path": str(demo_config), "overrides": [f"output={tmp_path / 'dag'}"]}
    first = _run(airflow_local, conf)
    states = airflow_local.task_states("regionset", first)
    assert len([t for t in states if t[0] == "download"]) == 2  # one mapped task per shard
    assert_same(snapshot(tmp_path / "dag"), _cli_build(demo_config, tmp_path / "cli"))

    before, hits = markers(tmp_path / "dag"), dict(server.hits)
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json"))
    _run(airflow_local, conf)
    assert markers(tmp_path / "dag") == before
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json")) == stamps
    assert server.hits == hits  # nothing downloaded again


def test_a_task_killed_once_is_retried_by_airflow_and_the_run_ends_equal(
        airflow_local, demo_config, tmp_path):  # noqa: F811
    airflow_local.fault_armed.write_text("armed")  # the first embed task to write its shard is SIGKILLed
    run_id = _run(airflow_local, {"config_path": str(demo_config), "overrides": [f"output={tmp_path / 'dag'}"]})
    assert not airflow_local.fault_armed.exists(), "the test fault never fired"
    tries = {(t, m): n for t, m, _, n in airflow_local.task_states("regionset", run_id)}
    assert sorted(n for (t, _), n in tries.items() if t == "embed") == [1, 2]  # the killed one, retried once
    assert_same(snapshot(tmp_path / "dag"), _cli_build(demo_config, tmp_path / "cli"))


def _asset_triggered(af, dag_id: str, seen: set[str], timeout: float) -> str:
    """The first ``asset_triggered`` run of ``dag_id`` not in ``seen``, polled for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [run for run, kind, _ in af.runs(dag_id) if run not in seen and kind == "asset_triggered"]
        if new:
            return new[0]
        time.sleep(2)
    raise AssertionError(f"no asset-triggered run of {dag_id} within {timeout} s: {af.runs(dag_id)}")


def test_a_committed_build_starts_regionset_train_by_itself(airflow_local, demo_config, tmp_path):  # noqa: F811
    af, runs = airflow_local, tmp_path / "runs"
    af.airflow("variables", "set", "regionset_train", json.dumps(tiny_training(runs)))
    seen = {run for run, _, _ in af.runs("regionset_train")}
    af.airflow("dags", "unpause", "regionset_train")
    try:
        build_run = _run(af, {"config_path": str(demo_config), "overrides": [f"output={tmp_path / 'dag'}"]})
        train_run = _asset_triggered(af, "regionset_train", seen, 300.0)
        assert af.wait("regionset_train", train_run, RUN_SECONDS) == "success", af.failed_logs("regionset_train", train_run)
    finally:
        af.airflow("dags", "pause", "regionset_train")
    metas = sorted(runs.glob("rice/*/checkpoints/step-*/meta.json"))
    assert metas, f"no checkpoint under {runs}"
    lineage = json.loads(metas[-1].read_text())["lineage"]
    assert lineage["build_run_id"] == build_run and lineage["build_run_named"] is True
    assert lineage["build_dir"] == str(tmp_path / "dag")
