"""The Airflow DAG: imports cleanly, has the pipeline's shape, and ``dag.test()`` equals ``regionset build``.

Airflow lives in its own venv (``dags/install_airflow.sh`` -> ``.venv-airflow``). Under that venv's
python these tests run directly; under the main python only ``test_dag_suite_in_airflow_venv``
runs, and it re-runs this folder with the venv's python (skipped, with the reason, if there is no
venv yet).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.typed_config import to_dict
from pipelines.build import build
from pipelines.config import load_config
from pipelines.demo.run import demo_overrides, write_url_list
from pipelines.tasks import DAG_STEPS, GLOBAL, SHARD
from tests.dags.conftest import DAGS_FOLDER
from tests.pipelines.snapshots import assert_same, markers, snapshot

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv-airflow" / "bin" / "python"
IN_AIRFLOW = importlib.util.find_spec("airflow") is not None
needs_airflow = pytest.mark.skipif(
    not IN_AIRFLOW, reason="airflow is not importable here: these run inside .venv-airflow "
    "(dags/install_airflow.sh) through test_dag_suite_in_airflow_venv")
pytestmark = pytest.mark.airflow
DAG_ID = "regionset"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


@needs_airflow
def test_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dags


@needs_airflow
def test_dag_structure_follows_the_pipeline(dagbag):
    dag = dagbag.dags[DAG_ID]
    chain = ["prepare", *(name for name, _ in DAG_STEPS), "catalog", "train"]
    assert sorted(t.task_id for t in dag.tasks) == sorted(chain)
    for before, after in zip(chain, chain[1:]):
        assert before in dag.get_task(after).upstream_task_ids, f"{before} must run before {after}"
    for name, kind in DAG_STEPS:  # per-shard steps are dynamically mapped over prepare's shard ids
        task = dag.get_task(name)
        assert task.is_mapped == (kind == SHARD), name
        if kind == SHARD:
            assert "prepare" in task.upstream_task_ids
        assert kind in (SHARD, GLOBAL)
    assert dag.params["train"] is False and dag.params["config_path"] == ""


@needs_airflow
def test_dag_test_equals_regionset_build_and_reruns_are_no_ops(dagbag, server, tmp_path):
    from airflow.utils import db

    db.initdb()  # the sqlite metadata DB under the test's AIRFLOW_HOME
    urls = write_url_list(server, tmp_path / "urls", limit=4)
    config_path = tmp_path / "build.yaml"  # the demo pipeline: every step, tiny offline models
    config_path.write_text(yaml.safe_dump(to_dict(load_config(None, demo_overrides(tmp_path / "dag", urls, 4)))))
    dag = dagbag.dags[DAG_ID]
    run = dag.test(run_conf={"config_path": str(config_path)})
    assert str(run.state) == "success"

    build(load_config(str(config_path), [f"output={tmp_path / 'cli'}", "progress=false"]))
    assert_same(snapshot(tmp_path / "dag"), snapshot(tmp_path / "cli"))

    before, hits = markers(tmp_path / "dag"), dict(server.hits)
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json"))
    rerun = dag.test(run_conf={"config_path": str(config_path)})
    assert str(rerun.state) == "success"
    assert markers(tmp_path / "dag") == before
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "dag" / "_state").glob("*/part-*.json")) == stamps
    assert server.hits == hits  # nothing downloaded again


@pytest.mark.airflow  # ~2 min: runs tests/dags inside .venv-airflow (install.sh --dev creates it)
@pytest.mark.skipif(IN_AIRFLOW, reason="already inside the airflow venv")
def test_dag_suite_in_airflow_venv():
    if not VENV_PYTHON.exists():
        reason = f"no Airflow venv at {VENV_PYTHON.parent.parent}: run dags/install_airflow.sh"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    cmd = [str(VENV_PYTHON), "-m", "pytest", str(Path(__file__).parent), "-q", "-m", "airflow",
           "-k", "not in_airflow_venv", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    print(proc.stdout[-4000:], proc.stderr[-2000:], file=sys.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def test_dag_file_imports_nothing_heavy_at_parse_time():
    import ast

    tree = ast.parse((DAGS_FOLDER / "regionset_dag.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) for n in top}
    assert modules <= {"__future__", "datetime", "airflow.sdk", "pipelines.tasks"}, modules
    code = "import sys, pipelines.tasks; print(sorted(m for m in ('torch', 'pyarrow', 'open_clip', 'stages') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
