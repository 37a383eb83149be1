"""The pipeline the cluster tests build: the executor parity test's (every step, tiny models, one
thread per stage) over the demo images the store host serves, with the URL list on the store.

``reference()`` is the local build of the same input; ``snapshot_of()`` downloads a cluster build's
``s3://`` prefix and takes the snapshot ``tests/pipelines/snapshots.py`` compares.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.cluster.hosts import Cluster
from tests.cluster.netns import REPO
from tests.s3server import BUCKET

N_IMAGES, SHARD_SIZE = 6, 4  # 8 URLs with the two bad ones: 2 shards
LIST_KEY = "lists/urls.parquet"


def upload_url_list(cluster: Cluster) -> str:
    """The demo's URL list (two bad URLs mixed in) pointing at the store host, put on the store."""
    import boto3

    from regionset.pipelines.tools.demo.corpus import demo_images

    rows = [(cluster.image_url(img.name), img.caption) for img in demo_images(N_IMAGES)]
    rows.insert(3, (cluster.image_url("missing.jpg"), "a file that is not there (404)"))
    rows.insert(4, (cluster.image_url("broken.jpg"), "corrupt bytes served as a jpeg"))
    buf = io.BytesIO()
    pq.write_table(pa.table({"url": [u for u, _ in rows], "caption": [c for _, c in rows]}), buf)
    boto3.client("s3", endpoint_url=cluster.endpoint).put_object(Bucket=BUCKET, Key=LIST_KEY, Body=buf.getvalue())
    return cluster.url(LIST_KEY)


def overrides(out: str, urls: str, extra: list[str] | None = None) -> list[str]:
    """Every step of the pipeline on its offline default, one thread per stage (thread counts change
    float reductions), private addresses allowed (the store host is on 10.231.x)."""
    from regionset.pipelines.config import BuildConfig
    from regionset.pipelines.steps import UNFUSED_STEPS
    from regionset.pipelines.tools.demo.run import demo_overrides

    one_thread = [f"{f.name}.resources.cpus=1" for f in dataclasses.fields(BuildConfig)
                  if hasattr(getattr(BuildConfig(), f.name), "resources")]
    return (demo_overrides(out, urls, SHARD_SIZE) + one_thread
            + ["progress=false", "download.allow_private=true", f"steps=[{','.join(UNFUSED_STEPS)}]", *(extra or [])])


def engine_overrides(cluster: Cluster, name: str) -> list[str]:
    """Start ``name`` (ray or spark) on the cluster; the overrides that point a build at it."""
    if name == "ray":
        return ["executor.name=ray", f"executor.ray.address={cluster.start_ray()}"]
    return ["executor.name=spark", f"executor.spark.master={cluster.start_spark()}"]


def local_build(cluster: Cluster, out: Path, urls: str, log: Path, timeout: float = 600,
                extra: list[str] | None = None) -> int:
    """The reference: ``regionset build`` with the local executor, run by the runner into ``out``
    (``extra``: more overrides, e.g. ``kmeans.fit=per_parent``)."""
    import os

    env = {**os.environ, **cluster.env, "PYTHONPATH": str(REPO)}
    with open(log, "ab") as sink:
        return subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", *overrides(str(out), urls, extra)],
                              env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, cwd=out.parent).returncode


def download(cluster: Cluster, prefix: str, to: Path) -> Path:
    """Every object under ``s3://BUCKET/prefix`` into the local folder ``to``, plus a catalog of it."""
    import boto3

    from regionset.pipelines.core.catalog import build_catalog

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            dest = to / obj["Key"][len(prefix.rstrip("/")) + 1:]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    build_catalog(to)  # the same files give the same catalog: its tables over the downloaded shards
    return to


def head_stage_state(cluster: Cluster, out_url: str, copy_to: Path) -> list[tuple]:
    """The ``stage_state`` table of the catalog the driver on the head host wrote for ``out_url``
    (copied out of the head's private ``/tmp`` first)."""
    import shutil

    import duckdb

    from regionset.pipelines.core import catalog

    name = catalog.catalog_file(out_url).name  # same name on every host; the folder is the head's HOME
    shutil.copyfile(cluster.head.path(f"/tmp/home/.cache/regionset/catalogs/{name}"), copy_to)
    con = duckdb.connect(str(copy_to), read_only=True)
    try:
        return con.execute("SELECT stage, shard, rows_in, rows_out, config_hash, input_hash, counters "
                           "FROM stage_state ORDER BY stage, shard").fetchall()
    finally:
        con.close()
