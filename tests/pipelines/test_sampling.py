"""regionset sample: hierarchical balanced sampling over the cluster tree, random sampling, pack.sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.core.shards import shard_path, write_table
from regionset.pipelines.tools.sample import sample_regions, water_fill, write_sample
from regionset.schemas import LABELS, labels_schema

# level-0 clusters of very different sizes, each with two leaves of different sizes
SIZES = {(0, 0): 700, (0, 1): 100, (1, 2): 80, (1, 3): 20, (2, 4): 30, (2, 5): 30, (3, 6): 25, (3, 7): 15}


@pytest.fixture
def out(tmp_path):
    rows = []
    for (top, leaf), n in SIZES.items():
        rows += [{"region_id": f"r{top}{leaf}{i:04d}", "key": f"00000{len(rows) + i:04d}", "source": "object",
                  "cluster_path": [top, leaf], "cluster_id": leaf, "distance": 0.1, "token_ids": None}
                 for i in range(n)]
    rows.append({"region_id": "text1", "key": "000000000", "source": "text", "cluster_path": None,
                 "cluster_id": None, "distance": None, "token_ids": [5]})
    write_table(pa.Table.from_pylist(rows, labels_schema()), shard_path(tmp_path, LABELS, 0))
    return tmp_path


def _entropy(table: pa.Table) -> float:
    top = np.array([p[0] for p in table.column("cluster_path").to_pylist()])
    p = np.bincount(top) / len(top)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_water_fill_shares_equally_and_passes_on_what_small_clusters_cannot_take():
    rng = np.random.default_rng(0)
    assert water_fill([1, 5, 100], 30, rng) == [1, 5, 24]
    assert water_fill([10, 10, 10], 9, rng) == [3, 3, 3]
    assert sum(water_fill([10, 10, 10], 10, rng)) == 10
    assert water_fill([2, 3], 100, rng) == [2, 3]


def test_balanced_is_balanced_at_every_level_and_beats_random_entropy(out):
    balanced = sample_regions(out, 120, "balanced", seed=1)
    rand = sample_regions(out, 120, "random", seed=1)
    assert balanced.num_rows == rand.num_rows == 120
    top = np.bincount([p[0] for p in balanced.column("cluster_path").to_pylist()])
    assert top.tolist() == [30, 30, 30, 30]
    leaves = np.bincount(balanced.column("cluster_id").to_numpy(), minlength=8)
    assert leaves[6:].tolist() == [15, 15] and leaves[2:4].tolist() == [15, 15]
    assert _entropy(balanced) > _entropy(rand)
    assert "text1" not in balanced.column("region_id").to_pylist()


def test_leftovers_are_redistributed(out):
    t = sample_regions(out, 400, "balanced", seed=0)
    leaves = np.bincount(t.column("cluster_id").to_numpy(), minlength=8)
    assert t.num_rows == 400
    assert leaves[6:].tolist() == [25, 15] and leaves[4:6].tolist() == [30, 30]  # small clusters give all


def test_deterministic_under_the_seed(out):
    a, b = sample_regions(out, 100, seed=3), sample_regions(out, 100, seed=3)
    assert a.equals(b)
    assert not a.equals(sample_regions(out, 100, seed=4))
    assert sample_regions(out, 50, "random", seed=3).equals(sample_regions(out, 50, "random", seed=3))


def test_cli_writes_the_sample_and_exits_2_without_labels(out, tmp_path_factory, capsys):
    from regionset.pipelines.cli import main

    (out / "_state").mkdir()  # what marks a build's output (pipelines/core/output_check.py)
    to = out / "sample.parquet"
    assert main(["sample", str(out), "--size", "40", "--seed", "2", "--to", str(to)]) == 0
    assert pq.read_table(to).num_rows == 40
    empty = tmp_path_factory.mktemp("empty")
    assert main(["sample", str(empty), "--size", "5", "--to", str(empty / "s.parquet")]) == 2
    assert "holds no regionset output" in capsys.readouterr().err
    (empty / "_state").mkdir()  # an output with no labels yet
    assert main(["sample", str(empty), "--size", "5", "--to", str(empty / "s.parquet")]) == 2
    assert "labels" in capsys.readouterr().err


def test_pack_sample_packs_only_sampled_regions(tmp_path):
    from regionset.schemas import TRAIN
    from regionset.stages.pack import PackConfig, PackStage
    from tests.label_data import key_of
    from tests.stages.test_pack import _build

    _build(tmp_path)  # a labelled shard, packed in full
    full = {r["region_id"] for row in pq.read_table(shard_path(tmp_path, TRAIN, 0)).column("regions").to_pylist()
            for r in row}
    n = write_sample(tmp_path, tmp_path / "s.parquet", 6, seed=0)
    picked = set(pq.read_table(tmp_path / "s.parquet").column("region_id").to_pylist())
    assert n == 6 and picked <= full
    from regionset.pipelines.executors.local import LocalExecutor

    report = LocalExecutor(show_progress=False).run_stage(PackStage(PackConfig(sample=str(tmp_path / "s.parquet"))),
                                                          tmp_path, [0])
    packed = {r["region_id"] for row in pq.read_table(shard_path(tmp_path, TRAIN, 0)).column("regions").to_pylist()
              for r in row}
    assert packed == picked and report.done == 1 and key_of(0)
