"""Per-shard orchestrator tasks above Airflow's ``max_map_length``: shards batched so the map fits,
every shard in exactly one batch, a batch run in sequence and skipped where its markers are."""

from __future__ import annotations

import pytest
import yaml

from regionset.common.typed_config import to_dict
from regionset.pipelines.core.shard_batches import TooManyBatchesError, batch_shards, batch_size_for
from regionset.pipelines.tasks import map_items, prepare_build, run_stage_shard
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls

AIRFLOW_DEFAULT = 1024  # Airflow's [core] max_map_length


def _covers_once(batches: list[list[int]], shards: list[int]) -> bool:
    flat = [s for b in batches for s in b]
    return flat == shards and len(set(flat)) == len(shards)


def test_2000_shards_fit_the_default_map_as_1000_batches_of_2():
    shards = list(range(2000))
    batches = batch_shards(shards, AIRFLOW_DEFAULT)
    assert len(batches) == 1000 <= AIRFLOW_DEFAULT and {len(b) for b in batches} == {2}
    assert _covers_once(batches, shards)
    items = map_items(shards, True, AIRFLOW_DEFAULT)
    assert len(items) == 1000 and items[0] == [0, 1] and items[-1] == [1998, 1999]


@pytest.mark.parametrize(("n", "max_items", "size", "count"), [
    (1024, 1024, 1, 1024), (1025, 1024, 2, 513), (5000, 1024, 5, 1000), (7, 3, 3, 3), (0, 1024, 1, 0)])
def test_batch_size_is_the_fewest_shards_that_fit(n, max_items, size, count):
    shards = list(range(100, 100 + n))  # ids need not start at 0
    assert batch_size_for(n, max_items) == size
    batches = batch_shards(shards, max_items)
    assert len(batches) == count <= max_items and _covers_once(batches, shards)


def test_configured_batch_size_and_its_limit():
    assert [len(b) for b in batch_shards(list(range(10)), 1024, 4)] == [4, 4, 2]
    with pytest.raises(TooManyBatchesError, match=r"shards_per_task=1 makes 2000 mapped tasks of 2000 shards, "
                                                  r"over Airflow's max_map_length 1024: set shards_per_task >= 2"):
        batch_shards(list(range(2000)), AIRFLOW_DEFAULT, 1)
    with pytest.raises(ValueError, match="max_map_length must be >= 1"):
        batch_size_for(3, 0)


def test_map_items_stay_shard_ids_while_they_fit_and_none_when_not_per_shard():
    assert map_items([0, 1, 2], True, AIRFLOW_DEFAULT) == [0, 1, 2]
    assert map_items([0, 1, 2], True, 2) == [[0, 1], [2]]
    assert map_items([0, 1, 2], False, 2) == [None]


def test_a_batch_runs_its_shards_in_sequence_and_a_retry_skips_the_committed(server, tmp_path):
    urls = write_urls(tmp_path, [server.add(f"b{i}.jpg", make_jpeg(200 + 20 * i, 160)) for i in range(6)])
    cfg_path = tmp_path / "build.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(download_only(tmp_path / "out", urls, shard_size=2))))
    shards = prepare_build(str(cfg_path), run_id="batch-run")
    assert shards == [0, 1, 2]
    assert run_stage_shard(str(cfg_path), "download", 1, run_id="batch-run")["status"] == "done"
    got = run_stage_shard(str(cfg_path), "download", [0, 1, 2], run_id="batch-run")  # shard 1 already done
    assert got["status"] == "done" and got["done"] == 2 and got["skipped"] == 1 and got["shards"] == [0, 1, 2]
    assert got["rows_out"] == 4
    again = run_stage_shard(str(cfg_path), "download", [0, 1, 2], run_id="batch-run")
    assert again["status"] == "complete" and again["done"] == 0 and again["skipped"] == 3


def test_prepare_of_a_2000_shard_build_maps_into_the_default_max_map_length(tmp_path):
    urls = write_urls(tmp_path, [f"http://127.0.0.1:9/img{i}.jpg" for i in range(2000)])  # never fetched here
    cfg_path = tmp_path / "build.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(download_only(tmp_path / "out", urls, shard_size=1))))
    shards = prepare_build(str(cfg_path), run_id="big-run")
    assert shards == list(range(2000))
    items = map_items(shards, True, AIRFLOW_DEFAULT)
    assert len(items) == 1000 <= AIRFLOW_DEFAULT and _covers_once(items, shards)
