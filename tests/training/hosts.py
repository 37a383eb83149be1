"""Training "hosts" for multi-node tests: separate torchrun launches with their own working dir,
HOME and TMPDIR, rendezvous on loopback.

:class:`LoopbackHosts` is the launcher the tests use today; a launcher over network-namespace
hosts only has to offer the same three things (``address`` of node 0, ``env`` of a node, ``spawn``
of a command on a node), so the tests do not change when it is swapped in.
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


def torchrun(nnodes: int, nproc: int, address: str, port: int, module: str, args: list[str],
             max_restarts: int = 0) -> list[str]:
    """A ``torchrun`` command line with a c10d rendezvous at ``address:port`` (the elastic one: a
    restarted agent re-joins it; node ranks are assigned by the rendezvous, not by launch order)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{address}:{port}", "--rdzv-id", f"job-{port}",
            "--max-restarts", str(max_restarts), "--monitor-interval", "1", "-m", module, *args]


def launch_nodes(hosts: LoopbackHosts, module: str, args: list[str], nproc: int = 1, max_restarts: int = 0,
                 env: dict[int, dict[str, str]] | None = None) -> list[subprocess.Popen]:
    """One torchrun per host, all joining one job."""
    port = free_port()
    return [hosts.spawn(i, torchrun(hosts.count, nproc, hosts.address, port, module, args, max_restarts),
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
