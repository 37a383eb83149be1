"""What the fault tests of the cluster share: wait (bounded) until a build reaches a point, judged
by the objects it has written to the store; then check what issue 32 item 7 asks of a build that
met a fault: it finished with the local build's tables, or it stopped within a bounded time with
exit 1 and one line naming the lost node(s), and a rerun resumes to the same tables."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.cluster.hosts import Cluster, tail
from tests.cluster.pipeline import download
from tests.pipelines.snapshots import assert_same, snapshot
from tests.s3server import BUCKET

AFTER_FAULT_SECONDS = 400  # the build must have ended by then: finished, or stopped by the stall timeout
POLL_SECONDS = 0.5


def count_keys(cluster: Cluster, prefix: str, under: str, suffix: str = "") -> int:
    """Objects under ``s3://BUCKET/prefix/under`` whose key ends with ``suffix``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    got = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{under}")
    return sum(k["Key"].endswith(suffix) for k in got.get("Contents", []))


def etags(cluster: Cluster, prefix: str, under: str) -> dict[str, str]:
    """Key -> ETag of every object under ``s3://BUCKET/prefix/under`` (to tell a rerun redid none of them)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    got = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/{under}")
    return {k["Key"]: k["ETag"] for k in got.get("Contents", [])}


def wait_until(cluster: Cluster, proc: subprocess.Popen, prefix: str, under: str, count: int = 1,
               suffix: str = "", seconds: float = 400) -> float:
    """Seconds until ``count`` objects exist under ``prefix/under`` (the build has reached that point);
    fails when the build ends first or after ``seconds``."""
    t0 = time.monotonic()
    while count_keys(cluster, prefix, under, suffix) < count:
        assert proc.poll() is None, f"the build ended before the fault: {tail(cluster.logs / (prefix + '.log'))}"
        assert time.monotonic() - t0 < seconds, f"nothing under {prefix}/{under} after {seconds} s"
        time.sleep(POLL_SECONDS)
    return time.monotonic() - t0


def wait_build(cluster: Cluster, proc: subprocess.Popen, prefix: str, what: str) -> int:
    """The build's exit code, at most ``AFTER_FAULT_SECONDS`` after the fault; a hang fails the test."""
    try:
        return proc.wait(timeout=AFTER_FAULT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"{what}: the build hung after the fault: {tail(cluster.logs / f'{prefix}.log')}") from None


def error_lines(cluster: Cluster, log: str) -> list[str]:
    text = (cluster.logs / log).read_text(errors="replace")
    return [ln for ln in text.splitlines() if ln.startswith("regionset build: error:")]


def finished_or_stopped(cluster: Cluster, rc: int, prefix: str, args: list[str], lost: list[str],
                        want: dict, to: Path) -> None:
    """Exit 0, or exit 1 with one ``stall_timeout`` line naming every host of ``lost`` and a rerun
    that exits 0; either way the store holds the local build's tables."""
    log = f"{prefix}.log"
    assert rc in (0, 1), tail(cluster.logs / log)
    if rc == 1:
        errors = error_lines(cluster, log)
        assert len(errors) == 1 and "stall_timeout" in errors[0], tail(cluster.logs / log)
        ips = [cluster.net.hosts[h].ip for h in lost]
        assert all(ip in errors[0] for ip in ips), errors[0]
        rerun = cluster.build(args, f"{prefix}-rerun.log")
        assert rerun == 0, tail(cluster.logs / f"{prefix}-rerun.log")
    got = download(cluster, prefix, to / prefix)
    if (got / "kmeans/kmeans.json").exists():  # kept next to the logs, to compare by hand on a failure
        shutil.copyfile(got / "kmeans/kmeans.json", cluster.logs / f"{prefix}-kmeans.json")
    assert_same(snapshot(got), want)
