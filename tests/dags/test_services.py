"""The services of the real-scheduler fixture start on private ports and leave nothing behind:
PostgreSQL (as ``nobody`` when root) and Redis, each in its own process group."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.dags.postgres import Postgres
from tests.dags.postgres import why_not_available as no_postgres
from tests.dags.redis_server import Redis
from tests.dags.redis_server import why_not_available as no_redis
from tests.pipelines.clusters import free_port


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_postgres_starts_answers_and_stops():
    if no_postgres():
        pytest.skip(no_postgres())
    root = Path(tempfile.mkdtemp(prefix="rspg-", dir="/tmp"))  # short: the socket lives here
    db = Postgres(root / "pg", free_port())
    try:
        db.start()
        assert db.rows("select current_database(), current_user") == [["airflow", "airflow"]]
        pgid = db.proc.pid
    finally:
        db.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert _gone(pgid)


def test_redis_starts_answers_and_stops(tmp_path):
    if no_redis():
        pytest.skip(no_redis())
    r = Redis(tmp_path / "redis", free_port())
    try:
        r.start()
        with socket.create_connection((r.listen, r.port), timeout=10) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(64).startswith(b"+PONG")
        pgid = r.proc.pid
    finally:
        r.stop()
    assert _gone(pgid)
