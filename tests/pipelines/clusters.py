"""Real single-host clusters on loopback for tests: a Ray head (``ray start --head``) and a Spark
standalone master + worker (``spark-class`` from the pyspark wheel), each in its own process group
and temp dir, stopped by killing that group (never ``ray stop``, which would stop every Ray here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RAY_TOKEN = "regionset0test0token0000000000ab"


def free_port() -> int:
    """A TCP port nothing listens on now (closed: connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def short_tmp(prefix: str) -> Path:
    """A short temp dir (Ray's socket paths must stay under ~107 characters)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def base_env(home: Path) -> dict[str, str]:
    """This environment with the worktree first on PYTHONPATH, ``HOME`` (``~/.ray``) and Ray's temp
    dir redirected, and no Ray address or token inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HOME=str(home), RAY_TMPDIR=str(home), RAY_USAGE_STATS_ENABLED="0")
    return env


def _stop_group(proc: subprocess.Popen, pgid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.poll()


@contextmanager
def ray_head(home: Path):
    """A Ray head with token authentication on 127.0.0.1; yields its ``host:port``."""
    port = free_port()
    env = {**base_env(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
    ray = str(Path(sys.executable).with_name("ray"))
    cmd = [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--temp-dir={home / 'r'}",
           "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(proc, proc.pid)  # the daemons `ray start` left keep its process group


@contextmanager
def spark_standalone(home: Path):
    """A Spark standalone master and one worker (2 cores) on 127.0.0.1; yields ``spark://host:port``."""
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    port, env = free_port(), base_env(home)
    env.update(SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(home / "logs"), SPARK_WORKER_DIR=str(home / "work"))
    master = f"spark://127.0.0.1:{port}"
    procs = []
    try:
        for args in (["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                      "--webui-port", str(free_port())],
                     ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory",
                      "2g", "--webui-port", str(free_port()), "--work-dir", str(home / "work"), master]):
            log = open(home / f"{args[0].rsplit('.', 1)[1]}.log", "wb")
            procs.append(subprocess.Popen([str(spark_class), *args], env=env, start_new_session=True,
                                          stdout=log, stderr=subprocess.STDOUT))
            if len(procs) == 1:
                wait_port(port, 60)
        deadline = time.monotonic() + 60
        while b"Successfully registered with master" not in (home / "Worker.log").read_bytes():
            assert time.monotonic() < deadline, (home / "Worker.log").read_text()[-2000:]
            time.sleep(0.5)
        yield master
    finally:
        for p in reversed(procs):
            _stop_group(p, p.pid)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, list[str], float]:
    """``regionset ARGS`` as a user runs it; (exit code, non-empty stderr lines, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return proc.returncode, lines, time.monotonic() - t0
