"""Fixtures of the cluster tests: one four-host cluster per session (``tests/cluster/hosts.py``)
and the local reference build of the same input. Skipped where network namespaces are not allowed."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.cluster.hosts import Cluster
from tests.cluster.netns import why_not_available
from tests.cluster.pipeline import local_build, upload_url_list
from tests.pipelines.snapshots import snapshot


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The store, head, w1 and w2 hosts, up; torn down (processes, namespaces, links) at the end."""
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("moto.server")
    # not under pytest's basetemp: other pytest runs on this machine prune old basetemps
    logs = Path(tempfile.mkdtemp(prefix="regionset-cluster-logs-", dir="/tmp"))
    c = Cluster(logs)
    saved: dict[str, str | None] = {}
    try:
        c.up()
        saved = {k: os.environ.get(k) for k in (*c.env, "REGIONSET_CATALOG_DIR")}
        os.environ.update(c.env, REGIONSET_CATALOG_DIR=str(tmp_path_factory.mktemp("catalogs")))
        print(f"cluster {c.net.prefix} on {c.net.base}.0/24, logs in {logs}")
        yield c
    finally:
        c.down()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def reference(cluster, tmp_path_factory):
    """The URL list on the store and the local build of it: (list URL, snapshot, seconds)."""
    urls = upload_url_list(cluster)
    out = tmp_path_factory.mktemp("reference") / "local"
    t0 = time.monotonic()
    rc = local_build(cluster, out, urls, cluster.logs / "local-build.log")
    assert rc == 0, (cluster.logs / "local-build.log").read_text()[-3000:]
    return urls, snapshot(out), time.monotonic() - t0
