"""A private Redis (Debian's ``redis-server``) for tests: the Celery broker of ``tests/dags/scheduler.py``,
on a private port and address, no persistence, its dir a temp folder, in its own process group."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.dags.postgres import stop_group

REDIS_SERVER = "/usr/bin/redis-server"
START_SECONDS = 30.0


def why_not_available() -> str:
    """Empty if ``redis-server`` is installed, else the one-line reason."""
    if not Path(REDIS_SERVER).exists() and not shutil.which("redis-server"):
        return "no redis-server (apt-get install redis-server; install.sh --dev does it as root)"
    return ""


class Redis:
    """``redis-server`` on ``listen:port`` with its files under ``root``.

    Args:
        root: an empty folder for its working dir and log.
        port: the TCP port.
        listen: the address it binds (workers on other hosts reach it there).
    """

    def __init__(self, root: Path, port: int, listen: str = "127.0.0.1") -> None:
        self.root, self.port, self.listen = root, port, listen
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.listen}:{self.port}/0"

    def start(self) -> Redis:
        self.root.mkdir(parents=True, exist_ok=True)
        binary = REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")
        log = open(self.root / "redis.log", "wb")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", self.listen, "--dir", str(self.root),
                                      "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((self.listen, self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start: {(self.root / 'redis.log').read_text()[-1000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None
