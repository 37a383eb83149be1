"""More faults on the four-host cluster (issue 32 item 7; docs/cluster.md "Faults"), each judged as
``tests/cluster/faults.py`` says (finished with the local build's tables, or exit 1 with one line
naming the lost node within ``executor.stall_timeout`` and a rerun that resumes to the same tables):

- Ray and Spark: ``w1``'s network link cut in the middle of a model stage (``detect``): its
  processes keep running, unreachable.
- Ray: every process of ``w1`` killed during ``download``, as the per-parent k-means fit starts
  (``kmeans.fit=per_parent``, against a local build with the same setting) and during ``assign``;
  Spark: the same three points.
- Spark: every worker host killed mid-stage: Spark waits for resources that never come; the stall
  guard stops the build (exit 1, one line naming both hosts); with the workers back, a rerun resumes.
- Ray: the driver killed on the head host mid-stage; a rerun resumes to the same tables.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import time

import pytest

from tests.cluster.faults import error_lines, etags, finished_or_stopped, wait_build, wait_until
from tests.cluster.hosts import has_java, tail
from tests.cluster.pipeline import download, engine_overrides, local_build, overrides
from tests.pipelines.snapshots import assert_same, snapshot

pytestmark = [pytest.mark.cluster]
# The default set keeps one fault of each kind (a Ray link cut, a Spark worker killed as the
# per-parent fit starts, a Ray driver killed); the other points and the every-worker-lost stop are
# `slow` (each 2-7 min on two cores; times in docs/cluster.md "Faults").
SLOW = pytest.mark.slow

STALL_TIMEOUT = 150  # executor.stall_timeout where the build may finish on the worker left
PER_PARENT = ["kmeans.fit=per_parent"]
# point -> (objects under the output that show the build is there, how many, their key's end)
POINTS = {
    "download": ("_state/download/", 1, ".json"),  # one shard downloaded, the other under way
    # embed's stage index written: fit_kmeans starts (level 0 on the driver, then the per-parent calls,
    # too quick to catch one in flight: w1 dies as they go out, before the engine has declared it dead)
    "kmeans": ("_state/embed/", 1, "_index.json"),
    "assign": ("_state/assign/", 1, ".json"),
}


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="module")
def reference_per_parent(cluster, reference, tmp_path_factory):
    """The local build with ``kmeans.fit=per_parent`` (its tree differs from the default fit's): its folder."""
    urls = reference[0]
    out = tmp_path_factory.mktemp("reference-per-parent") / "local"
    rc = local_build(cluster, out, urls, cluster.logs / "local-build-per-parent.log", extra=PER_PARENT)
    assert rc == 0, tail(cluster.logs / "local-build-per-parent.log")
    shutil.copyfile(out / "kmeans/kmeans.json", cluster.logs / "local-per-parent-kmeans.json")
    return out


def _per_parent_want(out, engine: str) -> dict:
    """The per-parent reference's snapshot as ``engine`` would have built it: a per-parent fit
    records the executor that ran it in ``kmeans.json``, the one thing that may differ."""
    meta = json.loads((out / "kmeans/kmeans.json").read_text())
    assert meta["executor"] in ("local", "ray", "spark"), meta
    (out / "kmeans/kmeans.json").write_text(json.dumps({**meta, "executor": engine}))
    return snapshot(out)


def _strike(cluster, engine: str, prefix: str, urls: str, want: dict, tmp_path, when: tuple, strike,
            stall: int = STALL_TIMEOUT, extra: list[str] | None = None) -> tuple[float, float, int]:
    """Build on ``engine`` into ``prefix``; once ``when`` (objects of the build on the store) is there,
    ``strike`` worker ``w1``. The build finishes with the local build's tables, or stops with one line
    naming ``w1`` and a rerun resumes to them. Returns (struck at, build ended at, its exit code)."""
    args = overrides(cluster.url(prefix), urls, [*engine_overrides(cluster, engine),
                                                 f"executor.stall_timeout={stall}", *(extra or [])])
    t0 = time.monotonic()
    proc = cluster.build_proc(args, f"{prefix}.log")
    at = wait_until(cluster, proc, prefix, *when)
    strike(cluster.net.hosts["w1"])
    rc = wait_build(cluster, proc, prefix, f"{engine}, w1 struck ({prefix})")
    ended = time.monotonic() - t0
    finished_or_stopped(cluster, rc, prefix, args, ["w1"], want, tmp_path)
    return at, ended, rc


CUT_WHEN = ("_state/detect/", 1, ".json")  # the first detect marker: mid model stage


@pytest.mark.ray
def test_ray_worker_link_cut_mid_model_stage(cluster, reference, tmp_path):
    _need("ray")
    urls, want, _ = reference
    cluster.reset()
    at, ended, rc = _strike(cluster, "ray", "ray-cut", urls, want, tmp_path, CUT_WHEN, lambda host: host.cut())
    print(f"TIMES ray cut: w1 cut at {at:.0f} s, build ended at {ended:.0f} s with exit {rc}")


@pytest.mark.spark
@SLOW
def test_spark_worker_link_cut_mid_model_stage(cluster, reference, tmp_path):
    """Spark learns of a cut worker only from missed heartbeats (the master's ``spark.worker.timeout``,
    60 s), then reschedules its task: a larger stall timeout than Ray's."""
    _need("pyspark")
    if not has_java():
        pytest.skip("Spark needs Java on PATH")
    urls, want, _ = reference
    cluster.reset()
    at, ended, rc = _strike(cluster, "spark", "spark-cut", urls, want, tmp_path, CUT_WHEN, lambda host: host.cut(),
                            stall=300)
    print(f"TIMES spark cut: w1 cut at {at:.0f} s, build ended at {ended:.0f} s with exit {rc}")


# (engine, point): the Spark kill at the per-parent fit in the default set, the others slow
KILLS = [pytest.param(engine, point, id=f"{engine}-{point}",
                      marks=[getattr(pytest.mark, engine), *([] if (engine, point) == ("spark", "kmeans") else [SLOW])])
         for engine in ("ray", "spark") for point in POINTS]


@pytest.mark.parametrize(("engine", "point"), KILLS)
def test_worker_killed_at(engine, point, cluster, reference, request, tmp_path):
    _need("ray" if engine == "ray" else "pyspark")
    if engine == "spark" and not has_java():
        pytest.skip("Spark needs Java on PATH")
    urls, want, _ = reference
    extra = PER_PARENT if point == "kmeans" else []
    if point == "kmeans":
        want = _per_parent_want(request.getfixturevalue("reference_per_parent"), engine)
    cluster.reset()
    at, ended, rc = _strike(cluster, engine, f"{engine}-kill-{point}", urls, want, tmp_path, POINTS[point],
                            lambda host: host.kill(), extra=extra)
    print(f"TIMES {engine} kill at {point}: w1 killed at {at:.0f} s, build ended at {ended:.0f} s with exit {rc}")


@pytest.mark.spark
@SLOW
def test_spark_every_worker_lost_stops_with_one_line_then_resumes(cluster, reference, tmp_path):
    """Spark reschedules a lost executor's tasks, but with no worker left it waits for resources
    forever: ``executor.stall_timeout`` stops it (exit 1, one line naming both hosts)."""
    _need("pyspark")
    if not has_java():
        pytest.skip("Spark needs Java on PATH")
    urls, want, _ = reference
    cluster.reset()
    prefix = "spark-lost-all"
    master = cluster.start_spark()
    args = overrides(cluster.url(prefix), urls, ["executor.name=spark", f"executor.spark.master={master}",
                                                 "executor.stall_timeout=60"])
    t0 = time.monotonic()
    proc = cluster.build_proc(args, f"{prefix}.log")
    at = wait_until(cluster, proc, prefix, "_state/detect/", 1, ".json")
    for w in ("w1", "w2"):
        cluster.net.hosts[w].kill()
    rc = wait_build(cluster, proc, prefix, "spark, every worker killed")
    ended = time.monotonic() - t0
    errors = error_lines(cluster, f"{prefix}.log")
    assert rc == 1 and len(errors) == 1 and "stall_timeout" in errors[0], tail(cluster.logs / f"{prefix}.log")
    assert all(cluster.net.hosts[w].ip in errors[0] for w in ("w1", "w2")), errors[0]
    cluster.join_spark(master, restart=True)
    rerun = cluster.build(args, f"{prefix}-rerun.log")
    assert rerun == 0, tail(cluster.logs / f"{prefix}-rerun.log")
    assert_same(snapshot(download(cluster, prefix, tmp_path / prefix)), want)
    print(f"TIMES spark every worker lost: killed at {at:.0f} s, build stopped at {ended:.0f} s with exit 1")


@pytest.mark.ray
def test_ray_driver_killed_mid_stage_then_resumes(cluster, reference, tmp_path):
    _need("ray")
    urls, want, _ = reference
    cluster.reset()
    prefix = "ray-driver"
    args = overrides(cluster.url(prefix), urls, [*engine_overrides(cluster, "ray"),
                                                 f"executor.stall_timeout={STALL_TIMEOUT}", "lease_seconds=30"])
    proc = cluster.build_proc(args, f"{prefix}.log")
    at = wait_until(cluster, proc, prefix, "_state/detect/", 1, ".json")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and nsenter: one process group
    proc.wait(timeout=30)
    before = etags(cluster, prefix, "_state/")  # the markers the killed build committed
    assert any("/detect/part-" in k for k in before), sorted(before)
    t0 = time.monotonic()
    rerun = cluster.build(args, f"{prefix}-rerun.log")
    assert rerun == 0, tail(cluster.logs / f"{prefix}-rerun.log")
    after = etags(cluster, prefix, "_state/")
    redone = sorted(k for k in before if "/part-" in k and after.get(k) != before[k])
    assert not redone, f"the rerun redid committed shards: {redone}"  # it resumed, not restarted
    assert_same(snapshot(download(cluster, prefix, tmp_path / prefix)), want)
    print(f"TIMES ray driver killed at {at:.0f} s; the rerun took {time.monotonic() - t0:.0f} s")
