"""Consumers read the output folder as it is, without regionset: HF datasets, Ray Data, Spark, DuckDB CLI.

A small build (synthetic regions -> k-means -> assign -> pack -> catalog, as in tests/stages/test_pack.py)
is read by each tool's own one-liner (the README's), and each must see exactly the rows pyarrow sees.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.catalog import build_catalog
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.stages.assign import AssignConfig, AssignStage
from regionset.stages.pack import PackConfig, PackStage
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, key_of, write_image_shard, write_region_shard


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """OUT with images, regions (object + text), embeddings, labels, train (2 shards) and the catalog."""
    out = tmp_path_factory.mktemp("consumers")
    x, _ = gaussian_mixture(32, k=3, d=8, seed=0)
    for shard in (0, 1):
        idx = np.arange(16 * shard, 16 * (shard + 1))
        write_region_shard(out, shard, idx, x[idx], texts={100 + shard: "exit only"})
        write_image_shard(out, shard, sorted({key_of(i) for i in [*idx, 100 + shard]}))
    run_fit_kmeans(out, BuildConfig(kmeans=KMeansConfig(levels=(2, 2), sample_size=100)), [0, 1])
    ex = LocalExecutor(show_progress=False)
    ex.run_stage(AssignStage(AssignConfig(kmeans_dir=str(out / "kmeans"))), out, [0, 1])
    ex.run_stage(PackStage(PackConfig()), out, [0, 1])
    build_catalog(out)
    return out


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("part-*.parquet"))


def test_hf_datasets_load_train_and_regions(out, tmp_path):
    datasets = pytest.importorskip("datasets")  # the dev extra installs it
    train = datasets.load_dataset("parquet", data_files=f"{out}/train/*.parquet", split="train",
                                  cache_dir=str(tmp_path))
    regions = datasets.load_dataset("parquet", data_files=f"{out}/regions/*/*.parquet", split="train",
                                    cache_dir=str(tmp_path))
    assert len(train) == _rows(out / "train") == 10 and len(regions) == _rows(out / "regions") == 34
    first = train[0]
    assert first["jpg"].startswith(b"JPEG") and first["regions"][0]["region_id"].startswith("r")
    assert sorted(set(regions["source"])) == ["object", "text"]


@pytest.mark.ray
def test_ray_data_reads_train(out):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        ds = ray.data.read_parquet(str(out / "train"))
        assert ds.count() == _rows(out / "train")
        assert "regions" in ds.schema().names
    finally:
        ray.shutdown()


@pytest.mark.spark
def test_spark_reads_train_and_regions(out):
    pyspark = pytest.importorskip("pyspark.sql")
    # spark.task.cpus explicitly: the JVM of this test process keeps the --conf values of the first
    # session it was launched for (an executor test may have set 2), and local[1] has one core.
    spark = (pyspark.SparkSession.Builder().master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.task.cpus", "1").getOrCreate())
    try:
        train = spark.read.parquet(str(out / "train"))
        assert train.count() == _rows(out / "train")
        exploded = train.selectExpr("explode(regions) AS r").selectExpr("r.region_id")
        assert exploded.count() == sum(len(r) for r in pq.read_table(out / "train").column("regions").to_pylist())
        assert spark.read.parquet(f"{out}/regions/*").count() == _rows(out / "regions")
    finally:
        spark.stop()


def test_plain_duckdb_cli_opens_the_catalog(out, tmp_path):
    cli = shutil.which("duckdb") or shutil.which("duckdb", path=str(Path(sys.executable).parent))
    assert cli, "no duckdb CLI: the dev extra installs duckdb-cli"
    query = "SELECT (SELECT count(*) FROM train), (SELECT count(*) FROM regions), (SELECT count(*) FROM labels)"
    got = subprocess.run([cli, "-readonly", "-csv", "-noheader", str(out / "catalog.duckdb"), "-c", query],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # from another folder
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == f"{_rows(out / 'train')},{_rows(out / 'regions')},{_rows(out / 'labels')}"
