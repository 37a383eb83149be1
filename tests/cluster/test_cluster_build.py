"""The full pipeline on a four-host cluster (Ray: head with no CPUs + 2 worker nodes; Spark
standalone: master + 2 workers), output on ``s3://`` at the store host: tables, markers, other
files and catalog tables identical to a local build of the same input (docs/cluster.md)."""

from __future__ import annotations

import importlib.util
import time

import pytest

from tests.cluster.hosts import has_java, tail
from tests.cluster.pipeline import download, engine_overrides, head_stage_state, overrides
from tests.pipelines.snapshots import assert_same, snapshot

pytestmark = [pytest.mark.cluster]


@pytest.mark.parametrize("name", [pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_cluster_build_matches_local(name, cluster, reference, tmp_path):
    if importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed")
    if name == "spark" and not has_java():
        pytest.skip("Spark needs Java on PATH")
    urls, want, local_s = reference
    cluster.reset()
    t0 = time.monotonic()
    engine = engine_overrides(cluster, name)
    t1 = time.monotonic()
    out = cluster.url(f"{name}-build")
    rc = cluster.build(overrides(out, urls, engine), f"{name}-build.log")
    t2 = time.monotonic()
    assert rc == 0, tail(cluster.logs / f"{name}-build.log")
    got = download(cluster, f"{name}-build", tmp_path / name)
    assert_same(snapshot(got), want)
    assert head_stage_state(cluster, out, tmp_path / 'head-catalog.duckdb') == want["catalog"]["stage_state"]
    print(f"TIMES {name}: local build {local_s:.0f} s, engine start {t1 - t0:.0f} s, cluster build {t2 - t1:.0f} s")
