"""Real clusters on loopback, used once right (a tiny build equal to the local one) and once wrong
(closed port, missing or wrong Ray token, ``auto`` with no cluster) -> exit 2 with one line naming
the key, within ``executor.connect_timeout``. Also: an empty ``executor.ray.address``
starts a fresh local Ray even with a stale ``ray_current_cluster`` and a dead ``RAY_ADDRESS``.

Each build runs ``regionset build`` in a subprocess, as a user would, with ``HOME`` and
``RAY_TMPDIR`` in a temp dir (the machine's ``~/.ray`` and ``/tmp/ray`` are never touched).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.tools.demo.run import demo_overrides, write_url_list
from regionset.pipelines.tools.demo.server import LoopbackServer
from tests.pipelines.clusters import (
    RAY_TOKEN,
    base_env,
    free_port,
    ray_head,
    run_cli,
    short_tmp,
    spark_standalone,
)
from tests.pipelines.snapshots import assert_same, snapshot

N_IMAGES, SHARD_SIZE = 3, 3  # 5 URLs with the two bad ones: 2 shards
STEPS = "steps=[download]"  # the executor path, not the models, is under test here

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
needs_spark = pytest.mark.skipif(importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
                                 reason="pyspark or java is missing")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Demo images on a loopback server, and the local build every executor must equal."""
    root = tmp_path_factory.mktemp("preflight")
    with LoopbackServer() as server:
        urls = write_url_list(server, root / "urls", limit=N_IMAGES)
        local = root / "local"
        build(load_config(None, [*demo_overrides(local, urls, SHARD_SIZE), STEPS, "progress=false"]))
        yield root, urls, snapshot(local)


@pytest.fixture
def home():
    """A short temp dir for HOME, RAY_TMPDIR and cluster state; removed afterwards."""
    path = short_tmp("rs-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _args(corpus, name: str, *overrides: str) -> list[str]:
    root, urls, _ = corpus
    cfg = root / f"{name}.yaml"
    cfg.write_text("progress: false\n")
    return ["build", str(cfg), *demo_overrides(root / name, urls, SHARD_SIZE), STEPS, *overrides]


def _fails(rc: int, lines: list[str], seconds: float, key: str) -> None:
    print(f"exit {rc} after {seconds:.1f} s: {lines}")
    assert rc == 2, lines
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in lines[0], lines


def _equal_to_local(corpus, name: str, rc: int, lines: list[str], seconds: float) -> None:
    print(f"{name}: exit {rc} after {seconds:.1f} s")
    assert rc == 0, "\n".join(lines[-40:])
    assert_same(snapshot(corpus[0] / name), corpus[2])


# -- Ray ------------------------------------------------------------------------------------------


@pytest.mark.ray
@needs_ray
def test_ray_head_right_and_wrong_token(corpus, home):
    with ray_head(home) as address:
        env = base_env(home)
        ok_env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
        _equal_to_local(corpus, "ray-head", *run_cli(_args(corpus, "ray-head", "executor.name=ray",
                                                               f"executor.ray.address={address}"), ok_env))
        for name, bad in (("wrong", {**ok_env, "RAY_AUTH_TOKEN": "0" * 32}), ("missing", env)):
            rc, lines, seconds = run_cli(_args(corpus, f"ray-{name}", "executor.name=ray",
                                               f"executor.ray.address={address}"), bad)
            _fails(rc, lines, seconds, "executor.ray.address")
            assert "RAY_AUTH_TOKEN" in lines[0] and "RAY_AUTH_MODE" in lines[0]


@pytest.mark.ray
@needs_ray
@pytest.mark.parametrize("address", ["closed", "auto"])
def test_ray_address_without_a_cluster_exits_2(corpus, home, address):
    if address == "closed":
        address = f"127.0.0.1:{free_port()}"
    rc, lines, seconds = run_cli(_args(corpus, "ray-none", "executor.name=ray", f"executor.ray.address={address}"),
                                 base_env(home))  # RAY_TMPDIR=home: no ray_current_cluster there
    _fails(rc, lines, seconds, "executor.ray.address")
    assert not (corpus[0] / "ray-none").exists()


@pytest.mark.ray
@needs_ray
def test_empty_address_ignores_stale_cluster_record_and_ray_address(corpus, home):
    """Issue 26: what ``ray start`` left behind and ``RAY_ADDRESS`` never hijack a local build."""
    (home / "ray").mkdir()
    (home / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")  # a dead head's record
    env = {**base_env(home), "RAY_ADDRESS": f"127.0.0.1:{free_port()}"}
    _equal_to_local(corpus, "ray-local", *run_cli(_args(corpus, "ray-local", "executor.name=ray",
                                                         "executor.ray.num_cpus=2"), env))


# -- Spark ----------------------------------------------------------------------------------------


@pytest.mark.spark
@needs_spark
def test_spark_standalone_right_and_closed_port(corpus, home):
    with spark_standalone(home) as master:
        _equal_to_local(corpus, "spark-standalone", *run_cli(
            _args(corpus, "spark-standalone", "executor.name=spark", f"executor.spark.master={master}",
                  f"executor.spark.python={sys.executable}"),  # on a cluster the default is Spark's own python3
            base_env(home)))
    rc, lines, seconds = run_cli(_args(corpus, "spark-closed", "executor.name=spark",
                                       f"executor.spark.master=spark://127.0.0.1:{free_port()}"), base_env(home))
    _fails(rc, lines, seconds, "executor.spark.master")
    assert not (corpus[0] / "spark-closed").exists()


@pytest.mark.spark
@needs_spark
def test_spark_workers_python_without_regionset_exits_2(corpus, home):
    system = "/usr/bin/python3"  # the interpreter Spark workers start without executor.spark.python
    if not shutil.os.path.exists(system):
        pytest.skip(f"no {system}")
    rc, lines, seconds = run_cli(_args(corpus, "spark-py", "executor.name=spark", f"executor.spark.python={system}"),
                                 base_env(home))
    _fails(rc, lines, seconds, "executor.spark.python")
