"""A holder paused past its lease (SIGSTOP) is taken over; resumed (SIGCONT), it commits nothing.

Issue 33's fencing test, on the loopback S3 server: the first build is stopped (its whole process
group) while it downloads a slow URL; a second build waits out the lease on its own monotonic clock,
takes it over (token 2) and finishes; the first is resumed and every commit it tries is refused, so
the objects the second build left are untouched and its tables equal a single clean build's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from regionset.common.storage import as_path
from tests.conftest import make_jpeg
from tests.helpers import table_hash, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)

LEASE = 2.0  # seconds: short, so the takeover comes quickly


def _config(tmp: Path, out: str, urls: Path, name: str) -> Path:
    cfg = {"output": out, "input": {"path": str(urls), "shard_size": 2}, "progress": False, "steps": ["download"],
           "lease_seconds": LEASE, "download": {"allow_loopback": True, "timeout": 3, "deadline": 5}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(config: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regionset.pipelines.cli", "build", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


def _objects(url: str) -> dict[str, str]:
    """Key -> version (ETag) of every object under ``url`` but the lease."""
    root = as_path(url)
    return {p.relative_to(root).as_posix(): p.fs.info(p.key)["ETag"] for p in root.rglob("*")
            if not p.key.endswith("_state/build.lock")}


def test_paused_holder_is_fenced_after_takeover(server, s3, tmp_path):  # noqa: F811
    urls = write_urls(tmp_path, [server.add(f"p{i}.jpg", make_jpeg(180 + 8 * i, 150)) for i in range(4)]
                      + [server.url("slow/4")])
    out = s3.url("paused")
    first = _cli(_config(tmp_path, out, urls, "a"), start_new_session=True)  # its own process group
    lease = as_path(out) / "_state" / "build.lock"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lease.exists() and server.hits.get("/slow/4", 0) >= 1):
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()[-2000:]
        os.killpg(first.pid, signal.SIGSTOP)  # paused mid-download, holding the lease (token 1)
        second = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build",
                                 str(_config(tmp_path, out, urls, "b"))], capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        after_second = _objects(out)
        assert json.loads(lease.read_bytes())["token"] == 2
        os.killpg(first.pid, signal.SIGCONT)
        assert first.wait(timeout=120) == 2
        err = first.stderr.read()
        assert "commit refused" in err or "lease lost" in err, err[-2000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGCONT)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=60)
    assert _objects(out) == after_second  # the resumed holder committed nothing
    clean = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build",
                            str(_config(tmp_path, str(tmp_path / "clean"), urls, "c"))],
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    got = s3.download("paused", tmp_path / "got")
    assert table_hash(got, "images") == table_hash(tmp_path / "clean", "images")
