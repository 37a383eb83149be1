"""A real Airflow 3 deployment for tests: scheduler, DAG processor and API server (the CLI of
``.venv-airflow``) against a private PostgreSQL (``tests/dags/postgres.py``), with ``AIRFLOW_HOME`` in
a temp dir and the dags folder pointing at this repo's ``dags/``.

    with Airflow(tmp_root) as af:                   # or the ``airflow_local`` fixture
        af.start(executor="LocalExecutor")
        run_id = af.trigger("regionset", {"config_path": ...})
        state = af.wait("regionset", run_id, timeout=900)   # "success" / "failed"; TimeoutError past it
        af.task_states("regionset", run_id)                 # [(task_id, map_index, state, try_number)]
        print(af.failed_logs("regionset", run_id))          # the failed tasks' logs, to diagnose

Every process runs in its own process group and ``stop()`` kills each group (and the database):
nothing outlives the test. The DAG's tasks run in this test's interpreter (``REGIONSET_PYTHON``).
States are read from the metadata DB with ``psql`` (cheap), runs are triggered with
``airflow dags trigger`` as a user would. Startup time is in ``timings["startup"]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.dags.postgres import Postgres, stop_group
from tests.dags.redis_server import Redis
from tests.pipelines.clusters import free_port

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_VENV = REPO / ".venv-airflow"
AIRFLOW = AIRFLOW_VENV / "bin" / "airflow"
DAGS_FOLDER = REPO / "dags"
TERMINAL = ("success", "failed")
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:+-]+$")
CLI_SECONDS = 180.0
PARSE_SECONDS = 240.0
POLL_SECONDS = 2.0


def why_not_available() -> str:
    """Empty if the Airflow venv and PostgreSQL are there, else the one-line reason."""
    from tests.dags.postgres import why_not_available as no_postgres

    if not AIRFLOW.exists():
        return f"no Airflow venv at {AIRFLOW_VENV}: run dags/install_airflow.sh"
    return no_postgres()


class Airflow:
    """Airflow's scheduler, DAG processor and API server, and their PostgreSQL, under ``root``.

    Args:
        root: an empty folder (kept short: PostgreSQL's socket lives in it).
        task_env: extra environment of every Airflow process (the tasks inherit it), e.g. a test fault.
        listen: the address the API server, PostgreSQL and Redis listen on (workers on other hosts
            reach them there: ``CeleryExecutor`` on the test cluster).
    """

    def __init__(self, root: Path, task_env: dict[str, str] | None = None, listen: str = "127.0.0.1") -> None:
        self.root, self.listen = root, listen
        self.home = root / "home"
        self.logs = root / "logs"
        self.task_env = dict(task_env or {})
        self.db = Postgres(root / "pg", free_port(), listen)
        self.redis = Redis(root / "redis", free_port(), listen)
        self.api_port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.timings: dict[str, float] = {}
        self.executor = ""

    @property
    def env(self) -> dict[str, str]:
        """The environment every Airflow process of this deployment gets (workers too)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{self.listen}:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "REGIONSET_PYTHON": sys.executable,  # the DAG's tasks run this checkout's regionset
        })
        if self.executor == "CeleryExecutor":
            env.update({"AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db.tcp_url.replace("+psycopg2", ""),
                        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1"})
        env.update(self.task_env)
        return env

    def worker_env(self, home: str) -> dict[str, str]:
        """The environment of an ``airflow celery worker`` on another host, ``AIRFLOW_HOME`` there."""
        env = {k: v for k, v in self.env.items() if k.startswith("AIRFLOW") or k in self.task_env}
        return {**env, "REGIONSET_PYTHON": sys.executable, "AIRFLOW_HOME": home,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{home}/logs", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db.tcp_url}

    def _secret(self, name: str) -> str:
        path = self.root / f".{name}-secret"
        if not path.exists():
            path.write_text(secrets.token_hex(16))
        return path.read_text()

    def airflow(self, *args: str, timeout: float = CLI_SECONDS) -> subprocess.CompletedProcess:
        """``airflow ARGS`` against this deployment; raises with its output if it fails."""
        proc = subprocess.run([str(AIRFLOW), *args], env=self.env, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {proc.returncode}: {proc.stderr[-3000:]}")
        return proc

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """A long-running ``airflow ARGS`` in its own process group, logging to ``logs/NAME.log``."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([str(AIRFLOW), *args], env=self.env, cwd=self.root, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, executor: str = "LocalExecutor", dag_id: str = "regionset") -> Airflow:
        """Database, schema, API server, DAG processor and scheduler; returns once ``dag_id`` is parsed."""
        t0 = time.monotonic()
        self.executor = executor
        self.logs.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.db.start()
        if executor == "CeleryExecutor":
            self.redis.start()
        self.airflow("db", "migrate")
        self.spawn("api-server", "api-server", "--host", self.listen, "--port", str(self.api_port), "--workers", "1")
        self.spawn("dag-processor", "dag-processor")
        self.spawn("scheduler", "scheduler")
        _wait_port(self.listen, self.api_port, 120, self)
        self.wait_parsed(dag_id)
        self.timings["startup"] = time.monotonic() - t0
        return self

    def wait_parsed(self, dag_id: str, timeout: float = PARSE_SECONDS) -> None:
        """Until the DAG processor has serialized ``dag_id``; its import error, if any, fails at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.db.rows(f"select 1 from serialized_dag where dag_id = '{_safe(dag_id)}'"):
                return
            errors = self.db.rows("select filename, stacktrace from import_error")
            if errors:
                raise RuntimeError(f"the dags folder does not parse: {errors}")
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{dag_id} not parsed after {timeout} s: {self._tail('dag-processor')}")

    def trigger(self, dag_id: str, conf: dict, run_id: str | None = None) -> str:
        """``airflow dags trigger DAG -c CONF -r RUN_ID``; the run id."""
        run_id = run_id or f"test__{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}"
        self.airflow("dags", "trigger", _safe(dag_id), "-c", json.dumps(conf), "-r", _safe(run_id))
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        rows = self.db.rows(f"select state from dag_run where dag_id = '{_safe(dag_id)}' and run_id = '{_safe(run_id)}'")
        return rows[0][0] if rows else ""

    def runs(self, dag_id: str) -> list[tuple[str, str, str]]:
        """(run_id, run_type, state) of every run of ``dag_id``, oldest first (e.g. an ``asset_triggered`` one)."""
        return [tuple(r) for r in self.db.rows(
            f"select run_id, run_type, coalesce(state, '') from dag_run where dag_id = '{_safe(dag_id)}' order by id")]

    def wait(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Poll the run until it is ``success`` or ``failed``; TimeoutError (with task states) past ``timeout``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self._check_alive()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                self.timings[run_id] = time.monotonic() - t0
                return state
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"run {run_id} not done after {timeout} s: {self.task_states(dag_id, run_id)}\n"
                           f"{self._tail('scheduler')}")

    def task_states(self, dag_id: str, run_id: str) -> list[tuple[str, int, str, int]]:
        """(task_id, map_index, state, try_number) of every task instance of the run."""
        rows = self.db.rows("select task_id, map_index, coalesce(state, ''), try_number from task_instance "
                            f"where dag_id = '{_safe(dag_id)}' and run_id = '{_safe(run_id)}' order by task_id, map_index")
        return [(t, int(m), s, int(n)) for t, m, s, n in rows]

    def task_logs(self, dag_id: str, run_id: str, task_id: str = "*") -> dict[str, str]:
        """The log file of every attempt of the run's tasks, by path under the log folder."""
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return {str(p.relative_to(base)): p.read_text(errors="replace")
                for p in sorted(base.glob(f"task_id={task_id}/**/attempt=*.log"))}

    def failed_logs(self, dag_id: str, run_id: str, chars: int = 4000) -> str:
        """The tails of the logs of the run's tasks that did not succeed (and the scheduler's tail)."""
        bad = sorted({t for t, _, s, _ in self.task_states(dag_id, run_id) if s not in ("success", "skipped")})
        parts = [f"--- {name}\n{text[-chars:]}" for t in bad for name, text in self.task_logs(dag_id, run_id, t).items()]
        return "\n".join(parts + [f"--- scheduler\n{self._tail('scheduler')}"])

    def _tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited {proc.returncode}: {self._tail(name)}")

    def stop(self) -> None:
        """Kill every process group started here, then the database."""
        for proc in self.procs.values():  # all told at once: their grace periods overlap
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(list(self.procs.values())):
            stop_group(proc)
        self.procs.clear()
        self.redis.stop()
        self.db.stop()

    def __enter__(self) -> Airflow:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_port(ip: str, port: int, seconds: float, af: Airflow) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        af._check_alive()
        with socket.socket() as s:
            if s.connect_ex((ip, port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"the API server is not up on {ip}:{port} after {seconds} s: {af._tail('api-server')}")


def _safe(value: str) -> str:
    if not SAFE_ID.match(value):
        raise ValueError(f"not a plain id: {value!r}")
    return value
