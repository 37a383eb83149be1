"""The worker probe run for real (issue 32): on the single-host Ray cluster and Spark standalone of
``tests/pipelines/clusters.py`` it passes (one node, same versions, output reachable); a Spark
interpreter that does not exist on the workers fails inside a Spark task, exit-2 style, naming
``executor.spark.python``. Each probe runs in a subprocess with the cluster's environment, as a
build's driver would (``pipelines/preflight/probe.py``: ``probe_workers``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.pipelines.clusters import RAY_TOKEN, REPO, base_env, ray_head, short_tmp, spark_standalone
from tests.pipelines.test_preflight_cluster import needs_ray, needs_spark

SCRIPT = """
import json, sys
from regionset.pipelines.config import load_config
from regionset.pipelines.core.output import Output
from regionset.pipelines.executors.factory import make_executor
from regionset.pipelines.preflight.checks import PreflightError
cfg = load_config(None, sys.argv[1:])
try:
    with make_executor(cfg.executor, False) as ex:
        from regionset.pipelines.preflight.probe import probe_workers
        checks = probe_workers(cfg, Output.of(cfg.output), ex, timeout=120)
    print(json.dumps({"status": "ok", "detail": checks[0].detail}))
except PreflightError as e:
    print(json.dumps({"status": "fail", "key": e.check.key, "detail": str(e)}))
"""


@pytest.fixture
def home():
    path = short_tmp("rsp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _probe(env, *overrides):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *overrides, "steps=[download,detect]"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ray
@needs_ray
def test_probe_on_a_ray_cluster(home):
    with ray_head(home) as address:
        env = {**base_env(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
        got = _probe(env, f"output={home / 'out'}", "executor.name=ray", f"executor.ray.address={address}")
    assert got["status"] == "ok" and "1 node(s)" in got["detail"], got


@pytest.mark.spark
@needs_spark
def test_probe_on_spark_standalone_and_a_python_missing_on_the_workers(home):
    with spark_standalone(home) as master:
        common = [f"output={home / 'out'}", "executor.name=spark", f"executor.spark.master={master}"]
        good = _probe(base_env(home), *common, f"executor.spark.python={sys.executable}")
        bad = _probe(base_env(home), *common, "executor.spark.python=/nonexistent/python3")
    assert good["status"] == "ok" and "1 node(s)" in good["detail"], good
    assert bad["status"] == "fail" and bad["key"] == "executor.spark.python", bad
