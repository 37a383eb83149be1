"""``pack.sample`` from a URL (issue 32): an ``s3://`` sample (``regionset sample --to s3://…``) packs the
same rows as the local file, is fetched once per worker into a cache keyed by its content hash, and a
sample replaced after planning is an error naming both hashes."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from regionset.common.storage import as_path
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import plan_stage, run_shard
from regionset.pipelines.core.shards import shard_path
from regionset.pipelines.tools.sample import write_sample
from regionset.schemas import TRAIN
from regionset.stages.pack import SAMPLE_CACHE, PackConfig, PackStage
from tests.s3server import s3  # noqa: F401 (fixture)
from tests.stages.test_pack import _build


def _pack(out, sample):
    """Plan on the driver, run as a worker would (the stage shipped by pickle); the packed region ids."""
    stage = PackStage(PackConfig(sample=sample))
    [task] = plan_stage(stage, Output.of(out), [0])
    run_shard(pickle.loads(pickle.dumps(stage)), Output.of(out), task)
    return stage, {r["region_id"] for row in pq.read_table(shard_path(out, TRAIN, 0)).column("regions").to_pylist()
                   for r in row}


def test_an_s3_sample_packs_like_the_local_file_and_is_cached_by_hash(s3, tmp_path):  # noqa: F811
    _build(tmp_path)
    write_sample(Output.of(tmp_path), tmp_path / "s.parquet", 6, seed=0)
    url = s3.url("samples/s.parquet")
    write_sample(Output.of(tmp_path), as_path(url), 6, seed=0)
    _, local = _pack(tmp_path, str(tmp_path / "s.parquet"))
    (tmp_path / TRAIN).joinpath("part-00000.parquet").unlink()
    stage, remote = _pack(tmp_path, url)
    assert remote == local and len(local) == 6
    cached = Path(tempfile.gettempdir()) / SAMPLE_CACHE / f"{stage.planned_sample}.parquet"
    assert cached.is_file()
    as_path(url).unlink()  # another worker process: served from its cache, not fetched again
    worker = pickle.loads(pickle.dumps(stage))
    assert worker._sample_file() == (str(cached), stage.planned_sample)


def test_a_sample_replaced_after_planning_is_an_error(tmp_path):
    _build(tmp_path)
    write_sample(Output.of(tmp_path), tmp_path / "s.parquet", 6, seed=0)
    stage = PackStage(PackConfig(sample=str(tmp_path / "s.parquet")))
    [task] = plan_stage(stage, Output.of(tmp_path), [0])
    write_sample(Output.of(tmp_path), tmp_path / "s.parquet", 3, seed=1)
    with pytest.raises(FileNotFoundError, match="planned"):
        run_shard(pickle.loads(pickle.dumps(stage)), Output.of(tmp_path), task)


def test_where_the_sample_lives_is_not_in_the_hash(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert PackStage(PackConfig(sample=str(a))).config_hash(tmp_path) == PackStage(PackConfig(sample=str(b))).config_hash(tmp_path)
    assert PackStage(PackConfig()).config_hash(tmp_path) == PackStage(PackConfig()).config_hash(tmp_path / "x")
