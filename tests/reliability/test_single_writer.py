"""One writer per output folder; readers of catalog.duckdb keep working while a build runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import duckdb
import pytest
import yaml

from regionset.common.liveness import this_process
from regionset.pipelines.build import build
from regionset.pipelines.core.lock import LOCK_NAME, BuildLock, LockedError
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls


def test_second_build_is_refused_while_first_runs(server, tmp_path):
    urls = [server.add(f"w{i}.jpg", make_jpeg(200, 200)) for i in range(3)] + [server.url("slow/6")]
    path = write_urls(tmp_path, urls)
    out = tmp_path / "out"
    build(download_only(out, path, extra=["download.deadline=1"]))  # a catalog exists for the reader
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"output": str(out), "input": {"path": str(path), "shard_size": 4},
                                   "steps": ["download"], "progress": False,
                                   "download": {"allow_loopback": True, "timeout": 3, "deadline": 5,
                                                "image_size": 128}}))
    first = subprocess.Popen([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.hits.get("/slow/6", 0) < 2:
            time.sleep(0.05)
        assert (out / LOCK_NAME).exists()
        second = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "is being built by pid" in second.stderr and socket.gethostname() in second.stderr
        # a reader is not locked out while the build runs
        con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
        assert con.execute("select count(*) from images").fetchone()[0] == len(urls)
        con.close()
    finally:
        assert first.wait(timeout=120) == 0, first.stderr.read()[-2000:]
    assert not (out / LOCK_NAME).exists()


def test_stale_lock_from_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "_state").mkdir()
    gone = {**this_process(), "pid": dead.pid, "start_time": "1", "started": 0}  # same boot and PID namespace
    (tmp_path / LOCK_NAME).write_text(json.dumps(gone))
    with BuildLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_hostname_and_pid_alone_do_not_prove_a_holder_dead(tmp_path):
    """A lock naming this host and a pid that is not running here may come from another PID namespace
    (a container sharing the hostname): without the same boot id and namespace it is respected."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "_state").mkdir()
    other_ns = {**this_process(), "pid": dead.pid, "pid_ns": "pid:[1]", "started": 0}
    for holder in ({"pid": dead.pid, "host": socket.gethostname(), "started": 0}, other_ns):
        (tmp_path / LOCK_NAME).write_text(json.dumps(holder))
        with pytest.raises(LockedError, match=f"pid {dead.pid}"):
            with BuildLock(tmp_path):
                pass


def test_lock_from_another_host_is_respected(tmp_path):
    (tmp_path / "_state").mkdir()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(LockedError, match="elsewhere"):
        with BuildLock(tmp_path):
            pass


def test_shard_folder_cannot_escape_output(tmp_path):
    from regionset.pipelines.core.shards import shard_path

    with pytest.raises(ValueError, match="escapes"):
        shard_path(tmp_path, "../elsewhere", 0)
