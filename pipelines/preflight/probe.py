"""The worker probe: before a Ray or Spark build does any work, one task on every node that runs tasks
reports what it would build with, and the driver compares it with its own (docs/cluster.md, "The
worker probe").

Each node reports its address (toward the cluster's head), host name and Python, the versions of
``PROBE_PACKAGES`` (regionset's with a hash of its code, so a module shadowed on one host shows), the
sha256 of every model file the config names, at the absolute path the driver resolved and the stages
ship (``model_files``, ``Stage.shipped_config``), and whether it
reads the probe object the driver wrote under ``output`` and can write its own there. A difference
from the driver, an output a node cannot read or write (a local folder that is not shared), or a
loopback object-store endpoint with a node on another host is a ``PreflightError``: exit 2, one line
naming the node and the key. ``probe_workers`` is the entry; ``node_report`` and ``compare`` are the
parts (a test can call ``compare`` with reports of its own).
"""

from __future__ import annotations

import hashlib
import importlib
import ipaddress
import os
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regionset.common.shard_names import STATE_DIR
from regionset.common.storage import as_path
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.output import Output
from regionset.pipelines.executors.base import Executor
from regionset.pipelines.preflight.checks import Check, PreflightError, fail, ok
from regionset.pipelines.preflight.models import model_files

PROBE_PACKAGES: dict[str, tuple[str, ...]] = {
    "regionset": ("regionset",), "torch": ("torch",), "faiss": ("faiss-cpu", "faiss-gpu", "faiss"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "open_clip": ("open_clip_torch",),
    "ultralytics": ("ultralytics",),
}
"""Module -> the distributions that may install it (the first one installed gives the version)."""
REGIONSET_SUBPACKAGES = ("common", "schemas", "models", "stages", "pipelines", "training")
PROBE_TIMEOUT_S = 180.0
"""Seconds every node has to answer (a fresh worker imports regionset and hashes the model files)."""


def _version(module: str) -> str:
    for dist in PROBE_PACKAGES[module]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def regionset_code_hash() -> str:
    """sha256 (12 hex) over the ``.py`` files of regionset's sub-packages as this process imports them."""
    h = hashlib.sha256()
    for sub in REGIONSET_SUBPACKAGES:
        pkg = importlib.import_module(f"regionset.{sub}")
        for folder in pkg.__path__:
            for f in sorted(Path(folder).rglob("*.py")):
                h.update(f"{sub}/{f.relative_to(folder).as_posix()}".encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:12]


def versions() -> dict[str, str]:
    """``PROBE_PACKAGES``' versions in this process; regionset's as ``version+code hash``."""
    got = {m: _version(m) for m in PROBE_PACKAGES}
    got["regionset"] = f"{got['regionset']}+{regionset_code_hash()}"
    return got


def address_toward(host: str) -> str:
    """This node's address on the route to ``host`` (no packet is sent: a UDP socket's local end)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return h.hexdigest()


def _probe_object(out_url: str, token: str, who: str) -> Any:
    return as_path(out_url) / STATE_DIR / f".probe-{token}-{who}"


def output_problem(out_url: str, token: str) -> str:
    """Empty if this node reads the driver's probe object under ``out_url`` and writes its own there;
    else what failed."""
    try:
        seen = _probe_object(out_url, token, "driver").read_text()
    except FileNotFoundError:
        return (f"output {out_url} here does not hold the driver's probe object: not the folder the driver "
                "writes (a local folder that is not shared?)")
    except Exception as e:  # noqa: BLE001 (object-store clients raise more than OSError)
        return f"output {out_url}: cannot read ({type(e).__name__}: {e})"
    mine = _probe_object(out_url, token, f"{address_toward('127.0.0.1')}-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        mine.write_bytes(seen.encode())
        back = mine.read_text()
        mine.unlink(missing_ok=True)
    except Exception as e:  # noqa: BLE001
        return f"output {out_url}: cannot write ({type(e).__name__}: {e})"
    return "" if seen == token == back else f"output {out_url}: the probe object read back differs"


def node_report(toward: str, out_url: str, token: str, files: dict[str, str]) -> dict[str, Any]:
    """What this node builds with (runs in a worker: ``Executor.on_every_node``).

    Args:
        toward: the cluster head's address (the node reports its own address on the route to it).
        out_url: the build's output, as its URL.
        token: the content of the driver's probe object under the output.
        files: config key -> the absolute model file the driver resolved (what the stages ship with).
    """
    return {"address": address_toward(toward), "host": socket.gethostname(), "python": sys.executable,
            "versions": versions(), "files": {k: [p, _sha256(p)] for k, p in files.items()},
            "output": output_problem(out_url, token)}


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def compare(driver: dict[str, Any], nodes: list[dict[str, Any]], endpoint: str = "") -> list[Check]:
    """The probe's verdict: one ``fail`` per difference (node and key named), else one ``ok``.

    Args:
        driver: the driver's ``node_report``.
        nodes: each worker node's ``node_report`` (several from one address count once).
        endpoint: the object-store endpoint the workers get (``AWS_ENDPOINT_URL``), if any.
    """
    by_address: dict[str, dict[str, Any]] = {}
    for n in nodes:
        by_address.setdefault(n["address"], n)
    checks = []
    for address, n in sorted(by_address.items()):
        who = f"worker probe: node {address} ({n['host']}, {n['python']})"
        if n["output"]:
            checks.append(fail("worker probe", "output", f"{who}: {n['output']}"))
        for module, want in driver["versions"].items():
            if n["versions"].get(module) != want:
                checks.append(fail("worker probe", f"version:{module}", f"{who}: {module} "
                                   f"{n['versions'].get(module)} but the driver has {want}"))
        for key, (path, sha) in driver["files"].items():
            got = n["files"].get(key)
            if got is None or got[1] != sha:
                what = ("not reported" if got is None else f"{got[0]} is {got[1]}" if got[1].startswith("unreadable")
                        else f"{got[0]} has sha256 {got[1][:12]}")
                checks.append(fail("worker probe", key, f"{who}: {key}: {what}; the driver's {path} has "
                                   f"{sha[:12]} (put the same file at an absolute path on every node)"))
        if endpoint and _is_loopback(endpoint) and address != driver["address"]:
            checks.append(fail("worker probe", "AWS_ENDPOINT_URL", f"{who}: AWS_ENDPOINT_URL={endpoint} is "
                               "loopback, but this node is another host: give an address every node reaches"))
    if not checks:
        checks.append(ok("worker probe", "executor", f"{len(by_address)} node(s) "
                         f"({', '.join(sorted(by_address))}): same versions and model files, output reachable"))
    return checks


PROBE_TRIES = 2
"""Probe runs before a node's failure is an error: a worker lost once (a busy node, a dying actor of
the previous build) is not a broken node; one that cannot start its Python fails every time."""


def _ask_nodes(executor: Executor, args: tuple, timeout: float) -> tuple[str, list[dict[str, Any]]]:
    """``executor.on_every_node(node_report, args)``, tried ``PROBE_TRIES`` times; ``PreflightError``
    naming the key (the worker's own error line) when every try fails."""
    key = "executor.spark.python" if executor.name == "spark" else "executor"
    said = ""
    for _ in range(PROBE_TRIES):
        try:
            return executor.on_every_node(node_report, args, timeout)
        except TimeoutError as e:
            raise PreflightError(fail("worker probe", "executor", f"worker probe: {e}")) from None
        except Exception as e:  # noqa: BLE001 (a worker that cannot start or import regionset)
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            errors = [ln for ln in lines if "Error" in ln or "Exception" in ln]  # the worker's own error, last
            said = (errors or lines or [type(e).__name__])[-1][:300]
    raise PreflightError(fail("worker probe", key, f"worker probe: a node failed {PROBE_TRIES} times ({said}); "
                              f"check {key} and that regionset is installed on every node"))


def probe_workers(cfg: BuildConfig, out: Output, executor: Executor, timeout: float = PROBE_TIMEOUT_S) -> list[Check]:
    """Run the probe on every node of ``executor``; raise ``PreflightError`` at the first difference.

    Args:
        cfg: the build config.
        out: the build's output.
        executor: a Ray or Spark executor (its cluster is started or joined here if it is not yet).
        timeout: seconds every node has to answer.
    """
    token = os.urandom(8).hex()
    files = model_files(cfg)  # absolute, as the stages ship them (Stage.shipped_config)
    driver_object = _probe_object(out.url, token, "driver")
    driver_object.parent.mkdir(parents=True, exist_ok=True)
    driver_object.write_bytes(token.encode())
    try:
        toward, nodes = _ask_nodes(executor, (out.url, token, files), timeout)
        driver = node_report(toward, out.url, token, files)
    finally:
        driver_object.unlink(missing_ok=True)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "") if out.is_remote else ""
    checks = compare(driver, nodes, endpoint)
    for check in checks:
        if check.status == "fail":
            raise PreflightError(check)
    return checks
