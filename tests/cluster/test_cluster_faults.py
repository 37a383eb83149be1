"""A worker host dies in the middle of a stage (every process of ``w1`` killed at once): the build
finishes on the remaining worker with tables identical to the local build, or stops within a
bounded time with exit 1 and one line naming the lost node; a rerun then resumes to the same tables.
Never a silent hang (docs/cluster.md "Faults")."""

from __future__ import annotations

import importlib.util
import subprocess
import time

import pytest

from tests.cluster.hosts import has_java, tail
from tests.cluster.pipeline import download, engine_overrides, overrides
from tests.pipelines.snapshots import assert_same, snapshot
from tests.s3server import BUCKET

pytestmark = [pytest.mark.cluster]

STALL_TIMEOUT = 150  # executor.stall_timeout: no shard finished for this long -> exit 1
AFTER_KILL_SECONDS = 400  # the build must have ended by then: finished, or stopped by the stall timeout
KILL_WHEN = ("detect", 1)  # kill w1 once this many markers of this stage exist: the stage is under way


def _markers(cluster, prefix: str, stage: str) -> int:
    import boto3

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    got = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/_state/{stage}/")
    return sum(k["Key"].endswith(".json") for k in got.get("Contents", []))


def _wait_then_kill(cluster, proc: subprocess.Popen, prefix: str, seconds: float = 400,
                    also: tuple[str, ...] = ()) -> float:
    stage, count = KILL_WHEN
    t0 = time.monotonic()
    while _markers(cluster, prefix, stage) < count:
        assert proc.poll() is None, f"the build ended before the fault: {tail(cluster.logs / (prefix + '.log'))}"
        assert time.monotonic() - t0 < seconds, f"no {stage} marker after {seconds} s"
        time.sleep(0.5)
    for name in ("w1", *also):
        cluster.net.hosts[name].kill()
    return time.monotonic() - t0


@pytest.mark.parametrize("name", [pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_worker_host_killed_mid_stage(name, cluster, reference, tmp_path):
    if importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed")
    if name == "spark" and not has_java():
        pytest.skip("Spark needs Java on PATH")
    urls, want, _ = reference
    cluster.reset()
    prefix = f"{name}-fault"
    args = overrides(cluster.url(prefix), urls, [*engine_overrides(cluster, name), f"executor.stall_timeout={STALL_TIMEOUT}"])
    t0 = time.monotonic()
    proc = cluster.build_proc(args, f"{prefix}.log")
    killed_at = _wait_then_kill(cluster, proc, prefix)
    try:
        rc = proc.wait(timeout=AFTER_KILL_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{name}: the build hung after w1 died: {tail(cluster.logs / f'{prefix}.log')}") from None
    ended = time.monotonic() - t0
    log = (cluster.logs / f"{prefix}.log").read_text(errors="replace")
    assert rc in (0, 1), tail(cluster.logs / f"{prefix}.log")
    if rc == 1:  # stopped: one line naming the lost node, then a rerun on the remaining worker resumes
        errors = [ln for ln in log.splitlines() if ln.startswith("regionset build: error:")]
        assert len(errors) == 1 and "stall_timeout" in errors[0], tail(cluster.logs / f"{prefix}.log")
        assert cluster.net.hosts["w1"].ip in errors[0], errors[0]
        rerun = cluster.build(args, f"{prefix}-rerun.log")
        assert rerun == 0, tail(cluster.logs / f"{prefix}-rerun.log")
    assert_same(snapshot(download(cluster, prefix, tmp_path / prefix)), want)
    print(f"TIMES {name} fault: w1 killed at {killed_at:.0f} s, build ended at {ended:.0f} s with exit {rc}")


@pytest.mark.ray
def test_ray_every_worker_lost_stops_with_one_line_then_resumes(cluster, reference, tmp_path):
    """No node left to run on: the build stops within ``executor.stall_timeout`` (exit 1, one line
    naming both lost nodes), and once workers join again a rerun resumes to the local build's tables."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    urls, want, _ = reference
    cluster.reset()
    prefix = "ray-lost-all"
    address = cluster.start_ray()
    args = overrides(cluster.url(prefix), urls, ["executor.name=ray", f"executor.ray.address={address}",
                                                 "executor.stall_timeout=60"])
    proc = cluster.build_proc(args, f"{prefix}.log")
    _wait_then_kill(cluster, proc, prefix, also=("w2",))
    try:
        rc = proc.wait(timeout=AFTER_KILL_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"ray: the build hung with no worker left: {tail(cluster.logs / f'{prefix}.log')}") from None
    log = (cluster.logs / f"{prefix}.log").read_text(errors="replace")
    errors = [ln for ln in log.splitlines() if ln.startswith("regionset build: error:")]
    assert rc == 1 and len(errors) == 1 and "stall_timeout" in errors[0], tail(cluster.logs / f"{prefix}.log")
    assert all(cluster.net.hosts[w].ip in errors[0] for w in ("w1", "w2")), errors[0]
    cluster.join_ray(address, restart=True)
    rerun = cluster.build(args, f"{prefix}-rerun.log")
    assert rerun == 0, tail(cluster.logs / f"{prefix}-rerun.log")
    assert_same(snapshot(download(cluster, prefix, tmp_path / prefix)), want)
