"""Ray and Spark executors with ``output: s3://…``: workers get the endpoint and credentials from the
environment the driver forwards (``AWS_*``), and write tables and markers identical to a local build."""

from __future__ import annotations

import importlib.util

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.executors.factory import make_executor
from tests.conftest import make_jpeg
from tests.helpers import download_only, table_hash, write_urls
from tests.pipelines.snapshots import markers
from tests.s3server import s3  # noqa: F401 (fixture)


@pytest.mark.parametrize("name", ["ray", "spark"])
def test_distributed_executor_writes_to_s3(name, server, s3, tmp_path):  # noqa: F811
    if importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed")
    urls = write_urls(tmp_path, [server.add(f"e{i}.jpg", make_jpeg(220 + 9 * i, 180)) for i in range(7)])
    build(download_only(tmp_path / "local", urls))
    cfg = load_config(None, [f"executor.name={name}", "executor.ray.num_cpus=2", "executor.spark.master=local[2]",
                             "progress=false"])
    executor = make_executor(cfg.executor, cfg.progress)
    try:
        build(download_only(s3.url(name), urls), executor=executor)
    finally:
        executor.close()
    got = s3.download(name, tmp_path / name)
    assert table_hash(got, "images") == table_hash(tmp_path / "local", "images")
    assert markers(got) == markers(tmp_path / "local")
