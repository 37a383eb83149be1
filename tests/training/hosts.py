"""Training "hosts" for multi-node tests: separate torchrun launches with their own working dir,
HOME and TMPDIR.

:class:`LoopbackHosts` runs them on this machine's loopback; :class:`NetnsHosts` runs them on hosts
of the network-namespace test cluster (``tests/cluster/netns.py``: own address, PID and mount
namespaces, rendezvous and gloo over the cluster's bridge). Both offer the same things (``address``
of node 0, ``local_addr`` and ``env`` of a node, ``spawn`` of a command on a node), so the tests
do not change with the launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.pipelines.clusters import free_port


@dataclass
class LoopbackHosts:
    """``count`` hosts on this machine: node i works in ``root/host-i`` (its cwd, HOME and TMPDIR)."""

    root: Path
    count: int = 2
    address: str = "127.0.0.1"

    def home(self, node: int) -> Path:
        path = self.root / f"host-{node}"
        (path / "tmp").mkdir(parents=True, exist_ok=True)
        return path

    def local_addr(self, node: int) -> str | None:
        return None

    def env(self, node: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        home = self.home(node)
        return {**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp"), "OMP_NUM_THREADS": "1",
                "GLOO_SOCKET_IFNAME": "lo", **(extra or {})}

    def spawn(self, node: int, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        home = self.home(node)
        log = open(home / f"launch-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 (closed by wait_all)
        proc = subprocess.Popen(argv, cwd=home, env=self.env(node, extra_env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        return proc


class NetnsHosts:
    """Node i runs on ``hosts[i]`` (a :class:`tests.cluster.netns.Host`: cwd and HOME on its own
    tmpfs), with ``env`` on top of :func:`tests.cluster.netns.host_env`; logs on the runner in ``logs``."""

    def __init__(self, hosts: list, logs: Path, env: dict[str, str] | None = None) -> None:
        self.hosts, self.logs, self.base_env = hosts, logs, env or {}
        self.count = len(hosts)
        self.address = hosts[0].ip
        logs.mkdir(parents=True, exist_ok=True)

    def local_addr(self, node: int) -> str:
        """The address torchrun publishes for this node (the hosts share this machine's hostname,
        which does not resolve to their test-subnet addresses)."""
        return self.hosts[node].ip

    def env(self, node: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self.base_env, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "eth0", **(extra or {})}

    def spawn(self, node: int, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        host = self.hosts[node]
        log = self.logs / f"{host.name}-{time.monotonic_ns()}.log"
        proc = host.popen(argv, log, self.env(node, extra_env))
        proc.log = open(log, "a")  # noqa: SIM115 (closed by wait_all; only its name is read)  # type: ignore[attr-defined]
        return proc


def torchrun(nnodes: int, nproc: int, address: str, port: int, module: str, args: list[str],
             max_restarts: int = 0, local_addr: str | None = None, is_host: bool | None = None) -> list[str]:
    """A ``torchrun`` command line with a c10d rendezvous at ``address:port`` (the elastic one: a
    restarted agent re-joins it; node ranks are assigned by the rendezvous, not by launch order).
    ``local_addr``: the address this node publishes; ``is_host``: whether this node serves the
    rendezvous store (else torchrun guesses it from the hostname, which namespace hosts share)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{address}:{port}", "--rdzv-id", f"job-{port}",
            "--max-restarts", str(max_restarts), "--monitor-interval", "1",
            *(["--local-addr", local_addr] if local_addr else []),
            *(["--rdzv-conf", f"is_host={int(is_host)}"] if is_host is not None else []), "-m", module, *args]


def launch_nodes(hosts: LoopbackHosts | NetnsHosts, module: str, args: list[str], nproc: int = 1, max_restarts: int = 0,
                 env: dict[int, dict[str, str]] | None = None) -> list[subprocess.Popen]:
    """One torchrun per host, all joining one job."""
    port = free_port()
    return [hosts.spawn(i, torchrun(hosts.count, nproc, hosts.address, port, module, args, max_restarts,
                                    hosts.local_addr(i), (i == 0) if hosts.local_addr(i) else None),
                        (env or {}).get(i)) for i in range(hosts.count)]


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Wait for every launch (bounded): (exit code, output) each; on timeout every group is killed."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        raise
    finally:
        for p in procs:
            p.log.close()  # type: ignore[attr-defined]
    return [(p.returncode, Path(p.log.name).read_text()) for p in procs]  # type: ignore[attr-defined]
