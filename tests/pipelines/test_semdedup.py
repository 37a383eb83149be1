"""semdedup: semantic region duplicates within leaf clusters; pack drops them; catalog counts them."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.shards import shard_path
from regionset.pipelines.dedup.config import SemDedupConfig
from regionset.pipelines.dedup.semdedup import greedy_duplicates, semdedup
from regionset.schemas import REGION_DUPLICATES, TRAIN
from tests.helpers import in_process


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_greedy_flags_near_copies_of_kept_regions_only():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    x = _unit([a, a + 0.01 * rng.normal(size=16), b, b + 0.01 * rng.normal(size=16), a + 0.02 * rng.normal(size=16)])
    dup_of, cos = greedy_duplicates(x, 0.98)
    assert dup_of.tolist() == [-1, 0, -1, 2, 0]
    assert (cos[dup_of >= 0] >= 0.98).all()


def test_greedy_blocks_agree_with_one_block(monkeypatch):
    import regionset.pipelines.dedup.semdedup as sd

    x = _unit(np.random.default_rng(1).normal(size=(300, 4)))
    full = greedy_duplicates(x, 0.9)[0]
    monkeypatch.setattr(sd, "_BLOCK", 7)
    assert (greedy_duplicates(x, 0.9)[0] == full).all()


def _packed_regions(out) -> set[str]:
    return {r["region_id"] for row in pq.read_table(shard_path(out, TRAIN, 0)).column("regions").to_pylist()
            for r in row}


def test_step_flags_per_cluster_pack_drops_and_catalog_counts(tmp_path):
    from regionset.pipelines.core.catalog import build_catalog, connect
    from regionset.pipelines.executors.local import LocalExecutor
    from regionset.stages.pack import PackConfig, PackStage
    from tests.stages.test_pack import _build

    _build(tmp_path)
    before = _packed_regions(tmp_path)
    cfg = BuildConfig(semdedup=SemDedupConfig(threshold=-1.0))  # every region but one per leaf is a duplicate
    summary = semdedup(tmp_path, cfg.semdedup, in_process(), [0])
    rows = pq.read_table(shard_path(tmp_path, REGION_DUPLICATES, 0)).to_pylist()
    assert summary["region_duplicates"] == len(rows) > 0
    labels = pq.read_table(tmp_path / "labels").to_pylist()
    leaves = {r["cluster_id"] for r in labels if r["cluster_id"] is not None}
    cluster_of = {r["region_id"]: r["cluster_id"] for r in labels}
    assert all(cluster_of[r["duplicate_of"]] == r["cluster_id"] == cluster_of[r["region_id"]] for r in rows)
    assert semdedup(tmp_path, cfg.semdedup, in_process(), [0])["shards_written"] == 0  # unchanged rows: file left alone
    ex = LocalExecutor(show_progress=False)
    report = ex.run_stage(PackStage(PackConfig(row_group_rows=2)), tmp_path, [0])
    after = _packed_regions(tmp_path)
    assert after == before - {r["region_id"] for r in rows}
    assert report.counters["drop:region_duplicate"] == len(rows)
    object_after = {r for r in after if cluster_of.get(r) is not None}
    assert len(object_after) == len(leaves)  # one kept region per leaf cluster
    ex.run_stage(PackStage(PackConfig(row_group_rows=2, keep_region_duplicates=True)), tmp_path, [0])
    assert _packed_regions(tmp_path) == before
    build_catalog(tmp_path)
    con = connect(tmp_path)
    try:
        counted = con.execute("SELECT sum(duplicates), count(*) FROM region_duplicates_per_cluster").fetchone()
    finally:
        con.close()
    assert counted == (len(rows), len(leaves))
