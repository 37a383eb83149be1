"""A private PostgreSQL 15 for Airflow's metadata DB in tests: ``initdb`` in a temp data dir, the
server on a private TCP port of 127.0.0.1 and a unix socket in that dir, trust auth, no fsync.

PostgreSQL refuses to run as root: as root the data dir is given to ``nobody`` and the server runs
as that user (``runuser``); otherwise as the current user. The server runs in the foreground in its
own process group, which ``stop()`` kills (SIGTERM, then SIGKILL): nothing outlives the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("REGIONSET_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "airflow"  # the database role initdb creates as superuser
START_SECONDS = 60.0


def why_not_available() -> str:
    """Empty if a PostgreSQL server can be started here, else the one-line reason."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL at {PG_BIN} (apt-get install postgresql; or set REGIONSET_TEST_PG_BIN)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser: PostgreSQL cannot run as root"
    return ""


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Kill ``proc``'s process group (started with ``start_new_session``): TERM, then KILL; bounded."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Postgres:
    """One PostgreSQL server with one database ``airflow`` owned by role ``airflow``.

    Args:
        root: an empty folder for the data dir, the socket and the log.
        port: the TCP port.
        listen: the address it listens on (another host's workers reach it there; trusted from its /16).
    """

    def __init__(self, root: Path, port: int, listen: str = "127.0.0.1") -> None:
        self.root, self.port, self.listen = root, port, listen
        self.data, self.log = root / "data", root / "postgres.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (psycopg2, unix socket in the temp dir)."""
        return f"postgresql+psycopg2://{USER}@/airflow?host={self.root}&port={self.port}"

    @property
    def tcp_url(self) -> str:
        """The SQLAlchemy URL over TCP, for processes on other hosts."""
        return f"postgresql+psycopg2://{USER}@{self.listen}:{self.port}/airflow"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chmod(self.root.parent, 0o711)  # nobody must reach the socket dir
            shutil.chown(self.root, "nobody")
        subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                                       "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        if self.listen != "127.0.0.1":
            net = ".".join(self.listen.split(".")[:2]) + ".0.0/16"
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {net} trust\n")
        log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            self._as_owner([str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
                            "-c", f"listen_addresses={self.listen}", "-c", "fsync=off", "-c", "max_connections=200",
                            "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while self.psql("postgres", "select 1", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        self.psql("postgres", "create database airflow")
        return self

    def psql(self, db: str, sql: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``sql``; rows in ``stdout``, unaligned, fields separated by ``|``."""
        return subprocess.run([str(PG_BIN / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", USER, "-d", db,
                               "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              check=check, capture_output=True, text=True, timeout=60)

    def rows(self, sql: str) -> list[list[str]]:
        """The rows of a query on the ``airflow`` database."""
        out = self.psql("airflow", sql).stdout
        return [line.split("|") for line in out.splitlines() if line]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None
