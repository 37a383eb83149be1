"""The ``regionset`` DAG under a real Airflow with CeleryExecutor on the four-host test cluster:
scheduler, DAG processor, API server, PostgreSQL (metadata DB and Celery result backend) and Redis
(the broker) on the runner, one ``airflow celery worker`` on each worker host (w1, w2: their own
network, ``/tmp`` and HOME), output on ``s3://`` at the store host. Its tables equal the local build
of the same input (docs/cluster.md "Airflow").

The build config is a URL on the store (``config_path: s3://…``): a config file on one host's disk
is not there on another; ``prepare`` pins it per run and every task on either worker reads it there.
The catalog is kept on the store and read from the head host, where no task ran.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest
import s3fs

from regionset.pipelines.config import load_config
from regionset.pipelines.core.run_config import config_text
from tests.cluster.hosts import tail
from tests.cluster.pipeline import download, overrides
from tests.dags.postgres import stop_group
from tests.dags.redis_server import why_not_available as no_redis
from tests.dags.scheduler import AIRFLOW, Airflow
from tests.dags.scheduler import why_not_available as no_airflow
from tests.pipelines.snapshots import assert_same, snapshot
from tests.s3server import ENV

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow]  # a whole DAG run: minutes
WORKER_HOME = "/tmp/home/airflow"  # on each worker host's private tmpfs
RUN_SECONDS = 1500.0


def test_celery_workers_on_two_hosts_build_what_the_local_build_does(cluster, reference, tmp_path):
    reason = no_airflow() or no_redis()
    if reason:
        pytest.skip(reason)
    urls, want, local_s = reference
    cluster.reset()
    root = Path(tempfile.mkdtemp(prefix="rsafc-", dir="/tmp"))
    af = Airflow(root, task_env=cluster.env, listen=cluster.net.runner_ip)
    workers = []
    try:
        af.start(executor="CeleryExecutor")
        for host in cluster.workers():
            workers.append(host.popen([str(AIRFLOW), "celery", "worker", "--concurrency", "1",
                                       "--celery-hostname", f"{host.name}@regionset"],
                                      cluster.logs / f"celery-{host.name}.log", af.worker_env(WORKER_HOME)))
        out = cluster.url("airflow-celery")
        store = s3fs.S3FileSystem(key=ENV["AWS_ACCESS_KEY_ID"], secret=ENV["AWS_SECRET_ACCESS_KEY"],
                                  client_kwargs={"endpoint_url": cluster.endpoint})
        config_url = cluster.url("airflow-celery-config/build.yaml")
        store.pipe(config_url, config_text(load_config(None, overrides(out, urls))).encode())
        run_id = af.trigger("regionset", {"config_path": config_url, "overrides": []})
        state = af.wait("regionset", run_id, RUN_SECONDS)
        ran = {h.name: sorted(h.path(f"{WORKER_HOME}/logs/dag_id=regionset/run_id={run_id}").glob("**/attempt=*.log"))
               for h in cluster.workers()}
        assert state == "success", "\n".join([af.failed_logs("regionset", run_id), *(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for logs in ran.values() for p in logs[-2:]),
            *(tail(cluster.logs / f"celery-{h.name}.log") for h in cluster.workers())])
        assert all(ran.values()), {h: len(v) for h, v in ran.items()}  # both worker hosts ran tasks
        got = download(cluster, "airflow-celery", tmp_path / "celery")
        assert_same(snapshot(got), want)
        assert store.exists(f"{out}/catalog.duckdb")  # the catalog task kept it on the store
        # The catalog from another host: the head host ran no task; `regionset sql` there reads it from the store.
        query = "SELECT 'rows=' || count(*) AS n FROM images"
        rc = cluster.head.run([sys.executable, "-m", "regionset.pipelines.cli", "sql", out, query],
                              cluster.logs / "airflow-sql.log", cluster.env, timeout=300)
        assert rc == 0, tail(cluster.logs / "airflow-sql.log")
        con = duckdb.connect(str(got / "catalog.duckdb"), read_only=True)
        try:
            want_rows = con.execute(query).fetchone()[0]
        finally:
            con.close()
        assert want_rows in (cluster.logs / "airflow-sql.log").read_text(), tail(cluster.logs / "airflow-sql.log")
        on_workers = {h.name: [p.name for p in h.path("/tmp/home/.cache/regionset/catalogs").glob("*.duckdb")]
                      for h in cluster.workers()}
        print(f"TIMES airflow celery: startup {af.timings['startup']:.0f} s, run {af.timings[run_id]:.0f} s, "
              f"local build {local_s:.0f} s; task logs per host {({h: len(v) for h, v in ran.items()})}; "
              f"the catalog task's file on the workers: {on_workers}")
    finally:
        for proc in workers:
            stop_group(proc)
        af.stop()
        shutil.rmtree(root, ignore_errors=True)  # a failure printed its logs first
