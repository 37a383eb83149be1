"""pack: one training row per image with labelled regions; drops; row groups sized for streaming."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.shards import shard_path
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.schemas import TRAIN, train_schema
from regionset.stages.assign import AssignConfig, AssignStage
from regionset.stages.pack import PackConfig, PackStage
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, key_of, write_image_shard, write_region_shard


def _build(out, failed=frozenset()):
    x, _ = gaussian_mixture(24, k=3, d=8, seed=0)
    # images 0..5 have object regions (4 each; region 1 has no embedding), image 7 text only,
    # image 8 only an empty text (no label), image 9 nothing at all
    write_region_shard(out, 0, np.arange(24), x, texts={28: "exit", 32: ""}, skip_embedding={1})
    keys = sorted({key_of(i) for i in range(40)})
    write_image_shard(out, 0, keys, failed=set(failed))
    run_fit_kmeans(out, BuildConfig(kmeans=KMeansConfig(levels=(2, 2), sample_size=100)), [0])
    ex = LocalExecutor(show_progress=False)
    ex.run_stage(AssignStage(AssignConfig(kmeans_dir=str(out / "kmeans"))), out, [0])
    return ex.run_stage(PackStage(PackConfig(row_group_rows=2)), out, [0])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack")
    return out, _build(out, failed={key_of(20)})


def test_one_row_per_image_with_labelled_regions(built):
    tmp_path, report = built
    table = pq.read_table(shard_path(tmp_path, TRAIN, 0))
    assert table.schema.equals(train_schema())
    rows = {r["key"]: r for r in table.to_pylist()}
    assert sorted(rows) == [key_of(4 * i) for i in range(5)] + [key_of(28)]
    assert report.counters["drop:not_downloaded"] == 1
    assert report.counters["drop:no_labelled_region"] == 3  # images of r32 (empty text), 36, and none
    assert report.counters["regions"] == 4 * 5 - 1 + 1
    first = rows[key_of(0)]
    assert first["jpg"] == f"JPEG{key_of(0)}".encode() and first["caption"] == f"caption {key_of(0)}"
    assert [r["region_id"] for r in first["regions"]] == ["r0", "r2", "r3"]
    for r in first["regions"]:
        assert r["source"] == "object" and 0 <= r["class_id"] < 4 and r["token_ids"] == []
        assert r["box"] == [1.0, 2.0, 30.0, 40.0]
    (text,) = rows[key_of(28)]["regions"]
    assert text["source"] == "text" and text["class_id"] == -1 and len(text["token_ids"]) == 10


def test_row_groups_are_small(built):
    meta = pq.ParquetFile(shard_path(built[0], TRAIN, 0)).metadata
    assert meta.num_rows == 6 and meta.num_row_groups == 3  # row_group_rows=2


def test_eval_duplicates_never_reach_train(tmp_path):
    import pyarrow as pa

    from regionset.pipelines.core.shards import write_table
    from regionset.schemas import DUPLICATES, duplicates_schema

    first, second = key_of(0), key_of(4)  # two images with labelled regions
    rows = [{"key": first, "duplicate_of": "eval/a.jpg", "kind": "eval", "distance": 2},
            {"key": second, "duplicate_of": first, "kind": "near", "distance": 3}]
    write_table(pa.Table.from_pylist(rows, duplicates_schema()), shard_path(tmp_path, DUPLICATES, 0))
    report = _build(tmp_path)
    keys = set(pq.read_table(shard_path(tmp_path, TRAIN, 0)).column("key").to_pylist())
    assert first not in keys and second in keys  # near duplicates that were processed are kept
    assert report.counters["drop:eval_duplicate"] == 1


def test_skip_duplicates_counts_and_switch():
    from collections import Counter

    import pyarrow as pa

    from regionset.schemas import DUPLICATES
    from regionset.stages.dedup import skip_duplicates

    images = pa.table({"key": ["a", "b", "c"]})
    dups = {DUPLICATES: pa.table({"key": ["b"], "duplicate_of": ["a"], "kind": ["exact"], "distance": [0]})}
    counters: Counter = Counter()
    assert skip_duplicates(images, dups, True, counters).column("key").to_pylist() == ["a", "c"]
    assert counters["skip:duplicate"] == 1
    assert skip_duplicates(images, dups, False, Counter()).num_rows == 3
    assert skip_duplicates(images, {}, True, Counter()).num_rows == 3
