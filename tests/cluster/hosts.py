"""The four-host test cluster: ``store`` (S3 test server + image server), ``head`` (Ray head / Spark
master and the driver) and two workers ``w1``, ``w2``, on the namespaces of ``tests/cluster/netns.py``.

``Cluster.up()`` starts the network and the store; ``start_ray()`` / ``start_spark()`` start an
engine on head + workers (Ray's head runs no tasks: ``--num-cpus=0``); ``build()`` runs
``regionset build`` on the head host as a user would. Every wait is bounded; ``down()`` kills every
host and deletes every namespace, whatever state the cluster is in.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.netns import REPO, Host, Network, wait_port
from tests.s3server import BUCKET, ENV

S3_PORT, HTTP_PORT, RAY_PORT, SPARK_PORT = 9000, 8080, 6379, 7077
WORKERS = ("w1", "w2")
WORKER_CPUS = 2  # logical; with 1 CPU left after losing a worker, Ray Data starts no actor (docs/cluster.md)
RAY_OBJECT_STORE = str(150 * 1024**2)
ENGINE_START_SECONDS = 120.0
THREAD_ENV = {n: "1" for n in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")}


class Cluster:
    """The test cluster; ``logs`` is a runner-side folder with one log per process.

    Args:
        logs: where every host process's output goes (the runner's disk).
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.net = Network()
        self.engine = ""

    @property
    def store(self) -> Host:
        return self.net.hosts["store"]

    @property
    def head(self) -> Host:
        return self.net.hosts["head"]

    def workers(self) -> list[Host]:
        return [self.net.hosts[w] for w in WORKERS]

    @property
    def endpoint(self) -> str:
        return f"http://{self.store.ip}:{S3_PORT}"

    @property
    def env(self) -> dict[str, str]:
        """What every host's regionset process gets: the object store's endpoint and credentials,
        one thread per pool (tables must not depend on thread counts)."""
        return {**ENV, "AWS_ENDPOINT_URL": self.endpoint, **THREAD_ENV}

    def image_url(self, name: str) -> str:
        return f"http://{self.store.ip}:{HTTP_PORT}/files/{name}"

    def url(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def up(self) -> Cluster:
        """Network, the four hosts, and the store's servers."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.net.up()
        for name in ("store", "head", *WORKERS):
            self.net.add(name)
        self.store.popen([sys.executable, str(REPO / "tests/cluster/store_host.py"), self.store.ip, str(S3_PORT),
                          str(HTTP_PORT), BUCKET], self.logs / "store.log", ENV)
        wait_port(self.store.ip, HTTP_PORT, 60, "the store host")  # serves images once the bucket exists
        return self

    def down(self) -> None:
        self.net.down()

    def reset(self) -> None:
        """Head and workers killed and booted again, empty (the store and its objects stay)."""
        for host in (self.head, *self.workers()):
            host.restart()
        self.engine = ""

    # --- Ray -------------------------------------------------------------------------------------

    def start_ray(self) -> str:
        """A Ray head (no CPUs: runs no tasks) and one Ray node per worker host; its address."""
        address = f"{self.head.ip}:{RAY_PORT}"
        self.head.popen([*_ray_start(), "--head", f"--port={RAY_PORT}", f"--node-ip-address={self.head.ip}",
                         "--num-cpus=0", "--include-dashboard=false"], self.logs / "ray-head.log", self.env)
        wait_port(self.head.ip, RAY_PORT, ENGINE_START_SECONDS, "the Ray head")
        self.join_ray(address)
        self.engine = "ray"
        return address

    def join_ray(self, address: str, restart: bool = False) -> None:
        """A Ray node on each worker host joins ``address`` (``restart``: the hosts boot again first)."""
        for w in self.workers() if restart else ():
            w.restart()
        suffix = "-rejoined" if restart else ""
        procs = [
            w.popen([*_ray_start(), f"--address={address}", f"--node-ip-address={w.ip}", f"--num-cpus={WORKER_CPUS}"],
                    self.logs / f"ray-{w.name}{suffix}.log", self.env) for w in self.workers()]
        for w, proc in zip(self.workers(), procs):
            _wait_log(self.logs / f"ray-{w.name}{suffix}.log", "Ray runtime started", f"Ray on {w.name}", proc)

    # --- Spark -----------------------------------------------------------------------------------

    def start_spark(self) -> str:
        """A Spark standalone master on head and one worker per worker host; its URL."""
        import pyspark

        spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
        master = f"spark://{self.head.ip}:{SPARK_PORT}"
        self.head.popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", self.head.ip, "--port",
                         str(SPARK_PORT), "--webui-port", "8081"], self.logs / "spark-master.log",
                        {**self.env, "SPARK_LOCAL_IP": self.head.ip})
        wait_port(self.head.ip, SPARK_PORT, ENGINE_START_SECONDS, "the Spark master")
        self.join_spark(master)
        self.engine = "spark"
        return master

    def join_spark(self, master: str, restart: bool = False) -> None:
        """A Spark worker on each worker host registers with ``master`` (``restart``: the hosts boot again first)."""
        import pyspark

        spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
        for w in self.workers() if restart else ():
            w.restart()
        suffix = "-rejoined" if restart else ""
        procs = [
            w.popen([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", w.ip, "--cores",
                     str(WORKER_CPUS), "--memory", "2g", "--webui-port", "8082", master],
                    self.logs / f"spark-{w.name}{suffix}.log", {**self.env, "SPARK_LOCAL_IP": w.ip})
            for w in self.workers()]
        for w, proc in zip(self.workers(), procs):
            _wait_log(self.logs / f"spark-{w.name}{suffix}.log", "Successfully registered with master",
                      f"Spark on {w.name}", proc)

    # --- builds ----------------------------------------------------------------------------------

    def build(self, overrides: list[str], log: str, timeout: float = 400) -> int:
        """``regionset build OVERRIDES`` on the head host (the driver); its exit code."""
        cmd = [sys.executable, "-m", "regionset.pipelines.cli", "build", *overrides]
        return self.head.run(cmd, self.logs / log, self.env, timeout=timeout)

    def build_proc(self, overrides: list[str], log: str):
        """The same build, started and not waited for (fault tests)."""
        cmd = [sys.executable, "-m", "regionset.pipelines.cli", "build", *overrides]
        return self.head.popen(cmd, self.logs / log, self.env)


def _ray_start() -> list[str]:
    ray = str(Path(sys.executable).with_name("ray"))
    return [ray, "start", "--block", "--disable-usage-stats", f"--object-store-memory={RAY_OBJECT_STORE}"]


def _wait_log(log: Path, text: str, what: str, proc: subprocess.Popen, seconds: float = ENGINE_START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
    raise TimeoutError(f"{what} did not start in {seconds:g} s (exit {proc.poll()}): {tail}")


def tail(log: Path, chars: int = 3000) -> str:
    """The end of a log (for assertion messages)."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else f"(no {log.name})"


def has_java() -> bool:
    return shutil.which("java") is not None
