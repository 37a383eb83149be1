"""The test suite's four-host cluster (``tests/cluster/``), started by hand: ``store`` (S3 test
server + demo images), ``head`` (Ray head with no CPUs, or Spark master) and workers ``w1``, ``w2``,
each a network namespace with its own PID/mount namespaces, ``/tmp`` and HOME (docs/cluster.md
"The test cluster"). Needs root.

    sudo python bench/cluster.py up ray        # or: up spark; prints how to reach it, Ctrl-C tears it down
    sudo python bench/cluster.py down          # deletes namespaces a crashed run left behind

``up`` prints the address of each host, the engine's address and a ready-to-paste ``regionset
build`` line for the head host (``nsenter`` into it); it runs until Ctrl-C (at most ``--hours``).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.cluster from this checkout

from tests.cluster.hosts import Cluster  # noqa: E402
from tests.cluster.netns import PREFIX, stale, why_not_available  # noqa: E402
from tests.cluster.pipeline import overrides, upload_url_list  # noqa: E402


def up(engine: str, hours: float) -> None:
    reason = why_not_available()
    if reason:
        sys.exit(f"bench/cluster.py: {reason}")
    logs = Path(tempfile.mkdtemp(prefix="regionset-cluster-logs-", dir="/tmp"))
    cluster = Cluster(logs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.up()
        import os

        os.environ.update(cluster.env)
        urls = upload_url_list(cluster)
        address = cluster.start_ray() if engine == "ray" else cluster.start_spark()
        key = "executor.ray.address" if engine == "ray" else "executor.spark.master"
        for name, host in cluster.net.hosts.items():
            print(f"{name:6s} {host.ip:15s} netns {host.ns}  (first process {host.pid1})")
        print(f"S3 endpoint {cluster.endpoint} (bucket {cluster.url('')}), {engine} at {address}, logs in {logs}")
        env = " ".join(f"{k}={v}" for k, v in cluster.env.items())
        args = " ".join(overrides(cluster.url(f"{engine}-by-hand"), urls, [f"executor.name={engine}", f"{key}={address}"]))
        print("a build on the head host:\n"
              f"  nsenter -t {cluster.head.pid1} -n -m -p env HOME=/tmp/home {env} "
              f"{sys.executable} -m regionset.pipelines.cli build {args}")
        print("Ctrl-C tears it all down.", flush=True)
        time.sleep(hours * 3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.down()
        print("cluster down")


def down() -> None:
    for ns in stale():
        subprocess.run(["ip", "netns", "del", ns], check=False)
        print(f"deleted netns {ns}")
    live = {ns.split("-")[0] for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                        text=True).stdout.split() if ns.startswith(PREFIX)}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX) and name[:-1] not in live:  # the runner's link rsc<id>r of a deleted run
            subprocess.run(["ip", "link", "del", name], check=False)
            print(f"deleted link {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start the cluster and keep it until Ctrl-C")
    p_up.add_argument("engine", choices=["ray", "spark"])
    p_up.add_argument("--hours", type=float, default=2.0, help="tear down after this long at most")
    sub.add_parser("down", help="delete what crashed runs left (rsc* namespaces with no process left, their links)")
    args = parser.parse_args()
    up(args.engine, args.hours) if args.cmd == "up" else down()


if __name__ == "__main__":
    main()
