"""A DAG run holds the output's lock from ``prepare`` to ``catalog``: a CLI build started on the same
output during the run exits 2 naming the run, and the DAG's tables are intact (issue 33 item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from regionset.pipelines.core.lock import LOCK_NAME
from tests.conftest import make_jpeg
from tests.dags.test_regionset_dag import DRIVER, REPO, VENV_PYTHON, _write
from tests.helpers import table_hash, write_urls

pytestmark = [pytest.mark.airflow, pytest.mark.slow]  # ~4 min: a whole dag.test() run with a CLI build during it


def _config(tmp_path, urls, out) -> str:
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump({"output": str(out), "input": {"path": str(urls), "shard_size": 2},
                                    "steps": ["download"], "progress": False,
                                    "download": {"allow_loopback": True, "timeout": 3, "deadline": 5}}))
    return str(path)


def test_cli_build_during_a_dag_run_exits_2_naming_the_run(server, tmp_path):
    if not VENV_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {VENV_PYTHON.parent.parent}: run dags/install_airflow.sh")
    urls = write_urls(tmp_path, [server.add(f"d{i}.jpg", make_jpeg(170 + 8 * i, 150)) for i in range(3)]
                      + [server.url("slow/4")])
    dag_out = tmp_path / "dag"
    conf = _write(tmp_path / "conf.json", [{"config_path": _config(tmp_path, urls, dag_out), "overrides": []}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow-home"), REGIONSET_PYTHON=sys.executable, PYTHONPATH=str(REPO))
    run = subprocess.Popen([str(VENV_PYTHON), str(DRIVER), "test", conf], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and run.poll() is None and not (dag_out / LOCK_NAME).exists():
            time.sleep(0.1)
        held = json.loads((dag_out / LOCK_NAME).read_text())
        assert held["run_id"], held
        cli = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build",
                              _config(tmp_path, urls, dag_out)], capture_output=True, text=True, timeout=300)
        log, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=60)
    assert cli.returncode == 2 and f"run {held['run_id']}" in cli.stderr, cli.stderr[-2000:]
    assert len(cli.stderr.strip().splitlines()) == 1
    result = json.loads(log.strip().splitlines()[-1])[0]
    assert result["state"] == "success", log[-6000:]
    assert not (dag_out / LOCK_NAME).exists()  # released by the run's last task
    plain = tmp_path / "plain"
    done = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", _config(tmp_path, urls, plain)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert table_hash(dag_out, "images") == table_hash(plain, "images")
