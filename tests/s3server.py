"""A real S3-protocol server on loopback (moto's ``ThreadedMotoServer``) for object-storage tests.

The fixture starts the server on a free loopback port, points ``AWS_ENDPOINT_URL`` at it with fake
credentials (``SECRET``, grepped for by the leak test) and creates a bucket; nothing leaves loopback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BUCKET = "regionset-test"
SECRET = "fake-secret-7f3c9a1e5b"  # noqa: S105 (a fake credential the leak test greps for)
ENV = {"AWS_ACCESS_KEY_ID": "fake-key-id", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """A running loopback S3 server: ``endpoint``, ``env`` (for subprocesses), a bucket, and helpers."""

    def __init__(self, server, endpoint: str) -> None:
        self.server = server
        self.endpoint = endpoint
        self.env = {**ENV, "AWS_ENDPOINT_URL": endpoint}

    def url(self, prefix: str) -> str:
        """``s3://BUCKET/prefix``."""
        return f"s3://{BUCKET}/{prefix}"

    def download(self, prefix: str, to: Path) -> Path:
        """Copy every object under ``prefix`` to the local folder ``to`` (for snapshot comparisons)."""
        from regionset.common.storage import as_path

        root = as_path(self.url(prefix))
        for obj in root.rglob("*"):
            dest = to / obj.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(obj.read_bytes())
        return to

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, relative to it."""
        from regionset.common.storage import as_path

        root = as_path(self.url(prefix))
        return [obj.relative_to(root).as_posix() for obj in root.rglob("*")]

_PUT_LOCK = threading.Lock()


def atomic_conditional_puts() -> None:
    """Make moto's PutObject keep S3's promise under racing writers: moto checks ``If-Match`` /
    ``If-None-Match`` and then stores in two steps (two racing creates can both win), where S3 does
    both atomically. One lock around moto's handler, in this process's server only."""
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "regionset_atomic", False):
        return
    unlocked = S3Response.put_object

    def put_object(self, *args, **kwargs):
        with _PUT_LOCK:
            return unlocked(self, *args, **kwargs)

    put_object.regionset_atomic = True
    S3Response.put_object = put_object


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A loopback S3 server with one bucket; the process env points at it while the module runs."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    atomic_conditional_puts()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL", "REGIONSET_CATALOG_DIR")}
    handle = S3Server(server, f"http://{host}:{port}")
    os.environ.update(handle.env, REGIONSET_CATALOG_DIR=str(tmp_path_factory.mktemp("catalogs")))
    try:
        import boto3

        boto3.client("s3", endpoint_url=handle.endpoint).create_bucket(Bucket=BUCKET)
        yield handle
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def moto_process(**env: str) -> Iterator[str]:
    """A separate moto server process on a free loopback port (its auth settings stay its own);
    yields its endpoint URL.

    Args:
        env: extra environment of the server (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT="0"``).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # wait until it listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
