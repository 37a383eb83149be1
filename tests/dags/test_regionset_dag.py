"""The Airflow DAG: parses in Airflow's own env, has the pipeline's shape, runs its tasks in
regionset's interpreter, and ``dag.test()`` equals ``regionset build`` (per shard, and with one
task per stage driving a local Ray).

Airflow lives in its own venv (``dags/install_airflow.sh`` -> ``.venv-airflow``) that cannot import
regionset's dependencies; these tests run in regionset's env and drive Airflow through
``airflow_driver.py`` under the venv's python (skipped, with the reason, if there is no venv yet).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regionset.common.typed_config import to_dict
from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.tasks import DAG_STEPS, SHARD
from regionset.pipelines.tools.demo.run import demo_overrides, write_url_list
from tests.dags.conftest import DAGS_FOLDER
from tests.pipelines.snapshots import assert_same, markers, snapshot

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv-airflow" / "bin" / "python"
DRIVER = Path(__file__).with_name("airflow_driver.py")
pytestmark = pytest.mark.airflow


def drive(tmp_path: Path, *args: str, pythonpath: bool = True, env: dict[str, str] | None = None) -> object:
    """Run airflow_driver.py in the Airflow venv; its JSON result.

    ``pythonpath``: put this checkout on PYTHONPATH, which the external-python tasks inherit, so
    they run this checkout's regionset in this test's interpreter (``REGIONSET_PYTHON``).
    ``env``: more environment (``AIRFLOW__CORE__MAX_MAP_LENGTH``, ...).
    """
    if not VENV_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {VENV_PYTHON.parent.parent}: run dags/install_airflow.sh")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    environ.update(AIRFLOW_HOME=str(tmp_path / "airflow-home"), REGIONSET_PYTHON=sys.executable)
    if pythonpath:
        environ["PYTHONPATH"] = str(REPO)
    environ.update(env or {})
    proc = subprocess.run([str(VENV_PYTHON), str(DRIVER), *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=1200)
    (tmp_path / f"driver-{args[0]}.log").write_text(proc.stdout + proc.stderr)  # the task logs, to debug
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dag_file_imports_nothing_of_regionset():
    tree = ast.parse((DAGS_FOLDER / "regionset_dag.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) for n in top}
    assert modules <= {"__future__", "datetime", "importlib.util", "os", "shutil", "sys", "pathlib", "airflow.sdk",
                       "airflow.sdk.configuration", "regionset_shared"}, modules


def test_dag_parses_in_the_airflow_venv_without_regionset(tmp_path):
    got = drive(tmp_path, "check", pythonpath=False)
    assert got["import_errors"] == {}
    assert got["importable"] == [], "the Airflow venv must not see regionset's packages"
    chain = ["prepare", *(name for name, _ in DAG_STEPS), "catalog", "train"]
    assert sorted(got["tasks"]) == sorted(chain)
    for before, after in zip(chain, chain[1:]):
        assert before in got["tasks"][after]["upstream"], f"{before} must run before {after}"
    for name, kind in DAG_STEPS:  # per-shard steps are dynamically mapped over prepare's result
        assert got["tasks"][name]["mapped"] == (kind == SHARD), name
        assert "params.regionset_python" in got["tasks"][name]["python"]
    assert sys.executable in got["tasks"]["prepare"]["python"]  # the default: $REGIONSET_PYTHON
    assert got["params"]["train"] is False and got["params"]["per_shard"] is True
    assert got["params"]["shards_per_task"] == 0 and got["params"]["train_out_dir"] == ""
    assert got["retry_on"] == {"config changed": "fail", "other": "default"}  # a changed config: no retries


@pytest.fixture
def demo_config(server, tmp_path) -> Path:
    """The demo pipeline (every step, tiny offline models) over 4 loopback images + 2 broken URLs, 2 shards."""
    urls = write_url_list(server, tmp_path / "urls", limit=4)
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(to_dict(load_config(None, demo_overrides(tmp_path / "unused", urls, 3)))))
    return path


def test_dag_test_equals_regionset_build_and_reruns_are_no_ops(demo_config, server, tmp_path):
    conf = {"config_path": str(demo_config), "overrides": [f"output={tmp_path / 'dag'}"]}
    first = drive(tmp_path, "test", _write(tmp_path / "conf1.json", [conf]))[0]
    assert first["state"] == "success", first
    shards = len(list((tmp_path / "dag" / "input").glob("part-*.parquet")))
    assert shards == 2 and first["tis"]["download"] == shards and first["tis"]["fit_kmeans"] == 1  # per shard

    build(load_config(str(demo_config), [f"output={tmp_path / 'cli'}", "progress=false"]))
    assert_same(snapshot(tmp_path / "dag"), snapshot(tmp_path / "cli"))

    before, hits = markers(tmp_path / "dag"), dict(server.hits)
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json"))
    rerun = drive(tmp_path, "test", _write(tmp_path / "conf2.json", [conf]))[0]
    assert rerun["state"] == "success", rerun
    assert markers(tmp_path / "dag") == before
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json")) == stamps
    assert server.hits == hits  # nothing downloaded again


@pytest.mark.ray
def test_one_task_per_stage_drives_a_local_ray_cluster(demo_config, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    # A local test cluster without token auth, for the cluster and its clients (the tasks) alike.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with LocalRay() as address:
        conf = {"config_path": str(demo_config), "per_shard": False,
                "overrides": [f"output={tmp_path / 'dag'}", "executor.name=ray", f"executor.ray.address={address}"]}
        run = drive(tmp_path, "test", _write(tmp_path / "conf.json", [conf]))[0]
    assert run["state"] == "success", run
    assert run["tis"]["download"] == 1 and run["tis"]["pack"] == 1  # one task per stage, not per shard
    build(load_config(str(demo_config), [f"output={tmp_path / 'cli'}", "progress=false"]))
    assert_same(snapshot(tmp_path / "dag"), snapshot(tmp_path / "cli"))


class LocalRay:
    """A one-node Ray cluster in a child process; yields its GCS address, shuts it down on exit."""

    CODE = ("import ray, sys; ray.init(num_cpus=2, include_dashboard=False); "
            "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()")

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        return self.proc.stdout.readline().strip()

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def _write(path: Path, doc: object) -> str:
    path.write_text(json.dumps(doc))
    return str(path)
