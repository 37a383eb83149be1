"""Preflight of the executor: the Ray or Spark address answers within ``executor.connect_timeout``.

Ray: an empty address is a fresh local Ray (nothing to reach); ``auto`` must name a running cluster
(``RAY_ADDRESS`` or the ``ray_current_cluster`` file ``ray start`` writes); a ``host:port`` must
accept a TCP connection and then answer a GCS request in a subprocess (so a hang is killed), which
is where a missing or wrong token shows up (``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN``). Spark: Java 17+
is on ``PATH``, a ``spark://`` (or ``k8s://``) master accepts a TCP connection, and the workers'
Python (``executor.spark.python``) imports regionset.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.preflight.checks import Check, fail, ok, warn

SPARK_MASTER_PORT = 7077
MIN_JAVA = 17

# Run by the workers' interpreter: importing what a Spark task unpickles.
_IMPORT_CHECK = "import regionset.pipelines.executors.distributed, regionset.stages, regionset.schemas"
# Run in a subprocess: one GCS request to the Ray head (authenticated like ray.init would be).
_GCS_PROBE = """
import sys
try:
    from ray._private.authentication import authentication_token_setup as auth
    from ray._raylet import GcsClient
    if sys.argv[3] == "auto":  # as ray.init: only an address found automatically picks up ~/.ray/auth_token
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    auth.ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    GcsClient(address=sys.argv[1]).internal_kv_get(b"session_name", namespace=b"session", timeout=float(sys.argv[2]))
except Exception as e:
    print(type(e).__name__ + ": " + (str(e).splitlines() or [""])[0])
    sys.exit(3)
"""
_PROBE_UNAVAILABLE = ("ImportError", "ModuleNotFoundError", "AttributeError", "TypeError")


def tcp_reachable(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout`` s, else why not."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.1)):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return e.strerror or str(e)


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    return host.strip("[]"), int(port) if port.isdigit() else default_port


def ray_address_file() -> Path:
    """Where ``ray start`` records the last cluster it started (``$RAY_TMPDIR`` aware, as Ray reads it)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def _auth_hint() -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    token = "set" if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") else "unset"
    return (f"RAY_AUTH_MODE is {mode}, RAY_AUTH_TOKEN is {token}; export RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN=<the cluster's token> (`ray get-auth-token` on the head prints it)")


def ray_checks(cfg: BuildConfig) -> Iterator[Check]:
    """Whether ``executor.ray.address`` names a Ray cluster this process can join, within the timeout."""
    key, address, timeout = "executor.ray.address", cfg.executor.ray.address, cfg.executor.connect_timeout
    if not address:
        yield ok("ray cluster", key, "empty: a fresh local Ray for this build (ray.init(address='local'))")
        return
    target = address
    if address == "auto":
        target = os.environ.get("RAY_ADDRESS", "")
        record = ray_address_file()
        if not target and record.is_file():
            target = record.read_text().strip()
        if not target:
            yield fail("ray cluster", key, f"{key}=auto: no running Ray cluster found (RAY_ADDRESS is unset and "
                       f"{record} does not exist); start one with `ray start --head`, set {key}=HOST:PORT, or "
                       f"leave {key} empty for a local Ray")
            return
    client = target.startswith("ray://")
    host, port = _host_port(target.removeprefix("ray://"), 10001 if client else 6379)
    start = time.monotonic()
    why = tcp_reachable(host, port, timeout)
    if why:
        found = f" (found {target})" if target != address else ""
        yield fail("ray cluster", key, f"{key}={address}{found}: {host}:{port} is not reachable ({why}); start the "
                   f"head with `ray start --head`, fix the address, or leave {key} empty for a local Ray")
        return
    if client:
        yield ok("ray cluster", key, f"{target} reachable (Ray Client)")
        return
    left = max(timeout - (time.monotonic() - start), 1.0)
    try:
        proc = subprocess.run([sys.executable, "-c", _GCS_PROBE, f"{host}:{port}", str(left), address],
                              capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        yield fail("ray cluster", key, f"{key}={address}: {host}:{port} accepts connections but gave no Ray answer "
                   f"within {timeout:g} s (executor.connect_timeout); is it a Ray head's GCS port?")
        return
    answer = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    if proc.returncode == 0:
        yield ok("ray cluster", key, f"{host}:{port} answered")
    elif "Authentication" in answer or "InvalidAuthToken" in answer or "Unauthenticated" in answer:
        yield fail("ray cluster", key, f"{key}={address}: the Ray cluster refused this client's token "
                   f"(token authentication); {_auth_hint()}")
    elif answer.startswith(_PROBE_UNAVAILABLE):  # another Ray version's internals: ray.init will tell
        yield warn("ray cluster", key, f"{host}:{port} reachable; token check skipped ({answer[:120]})")
    else:
        yield fail("ray cluster", key, f"{key}={address}: {host}:{port} did not answer as a Ray head: {answer}")


def java_version() -> tuple[str | None, int]:
    """(path of ``java``, major version; 0 when unknown) from ``$JAVA_HOME`` or ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() else shutil.which("java")
    if not java:
        return None, 0
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return java, 0
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return java, 0
    major = int(m.group(1))
    return java, int(m.group(2) or 0) if major == 1 else major


def spark_checks(cfg: BuildConfig) -> Iterator[Check]:
    """Java, the master's address and the workers' Python, each within the timeout."""
    sc, timeout = cfg.executor.spark, cfg.executor.connect_timeout
    java, major = java_version()
    if java is None:
        yield fail("java", "executor.name", f"executor.name=spark: Java {MIN_JAVA}+ is not on PATH (nor in "
                   "JAVA_HOME); install a JDK 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
        return
    if major and major < MIN_JAVA:
        yield fail("java", "executor.name", f"executor.name=spark: {java} is Java {major}; PySpark 4 needs "
                   f"Java {MIN_JAVA}+ (set JAVA_HOME to a newer JDK)")
        return
    yield ok("java", "executor.name", f"{java} (Java {major or '?'})")
    master = sc.master
    if master.startswith(("spark://", "k8s://")):
        hosts = master.split("://", 1)[1].removeprefix("https://").removeprefix("http://").split(",")
        reasons = []
        for hp in hosts:
            host, port = _host_port(hp.split("/")[0], SPARK_MASTER_PORT if master.startswith("spark") else 443)
            why = tcp_reachable(host, port, timeout)
            if why is None:
                break
            reasons.append(f"{host}:{port} {why}")
        else:
            yield fail("spark master", "executor.spark.master", f"executor.spark.master={master}: not reachable "
                       f"({'; '.join(reasons)}); start the master (spark-class org.apache.spark.deploy.master.Master)"
                       ", fix the URL, or use local[*]")
            return
        yield ok("spark master", "executor.spark.master", f"{master} reachable")
    elif master.startswith("local"):
        yield ok("spark master", "executor.spark.master", f"{master} (in this process)")
    else:
        yield warn("spark master", "executor.spark.master", f"{master}: reachability not checked")
    if not master.startswith("local"):  # the interpreter is the workers' (another host): checked there
        yield ok("spark workers' python", "executor.spark.python", f"{sc.python or 'Spark default'}: checked "
                 "inside a Spark task by the worker probe")
        return
    python = sc.python or sys.executable
    try:
        proc = subprocess.run([python, "-c", _IMPORT_CHECK], capture_output=True, text=True, timeout=max(timeout, 30))
        problem = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        problem = str(e)
    if problem:
        yield fail("spark workers' python", "executor.spark.python", f"executor.spark.python={python}: cannot import "
                   f"regionset ({problem}); install regionset in that interpreter or point the key at one that has it")
    else:
        yield ok("spark workers' python", "executor.spark.python", f"{python} imports regionset")


def executor_checks(cfg: BuildConfig) -> Iterator[Check]:
    """The checks of the executor ``cfg.executor.name`` names (none for ``local``).

    Args:
        cfg: the resolved build config.
    """
    if cfg.executor.name == "ray":
        yield from ray_checks(cfg)
    elif cfg.executor.name == "spark":
        yield from spark_checks(cfg)
