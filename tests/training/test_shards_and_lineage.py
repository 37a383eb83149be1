"""One view of the shards across save and resume, and the lineage every checkpoint carries.

- a shard added between save and resume stops the run naming it, unless ``loop.follow_new_shards``;
  then it is appended (name order) and joins at the next epoch;
- a shard that disappeared is an error naming it;
- ``meta.json`` names the build's run id, config hash, centroid hash and every shard's marker hash;
  ``regionset train … --dry-run`` prints them and trains nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from regionset.pipelines.core.lineage import add_to_lineage, append_run
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import Marker, file_sha256, write_marker
from regionset.training.cli import run_training
from regionset.training.shard_view import ShardList, reconcile_shards
from regionset.training.synthetic import write_synthetic_shards
from tests.training.test_run_storage import CONFIG, rice_overrides

SAVED = [{"name": "part-00000.parquet", "rows": 8, "join_epoch": 0},
         {"name": "part-00002.parquet", "rows": 8, "join_epoch": 0}]


def view(*names: str, rows: int = 8) -> ShardList:
    return ShardList([f"s3://b/out/train/{n}" for n in names], [rows] * len(names))


def test_reconcile_names_new_and_missing_shards():
    with pytest.raises(ValueError, match=r"part-00001\.parquet.*appeared.*follow_new_shards"):
        reconcile_shards(SAVED, view("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"), False, 3, "ck")
    with pytest.raises(ValueError, match=r"part-00002\.parquet.*no longer"):
        reconcile_shards(SAVED, view("part-00000.parquet", "part-00001.parquet"), True, 3, "ck")
    with pytest.raises(ValueError, match="row count"):
        reconcile_shards(SAVED, view("part-00000.parquet", "part-00002.parquet", rows=9), False, 3, "ck")
    got = reconcile_shards(SAVED, view("part-00003.parquet", "part-00000.parquet", "part-00001.parquet",
                                       "part-00002.parquet"), True, 3, "ck")
    # saved order kept, new ones appended in name order, joining at the next epoch
    assert got.names() == ["part-00000.parquet", "part-00002.parquet", "part-00001.parquet", "part-00003.parquet"]
    assert got.join_epochs == [0, 0, 3, 3]


def test_shard_added_between_save_and_resume(tmp_path):
    torch.set_num_threads(2)
    write_synthetic_shards(str(tmp_path / "out"), num_shards=2, rows_per_shard=8, size=32)
    run = tmp_path / "run"
    run_training("rice", CONFIG, rice_overrides(tmp_path / "out", run, 2, "export=false"))
    write_synthetic_shards(str(tmp_path / "out"), num_shards=3, rows_per_shard=8, size=32)  # same 0, 1; adds 2
    with pytest.raises(ValueError, match=r"part-00002\.parquet.*appeared"):
        run_training("rice", CONFIG, rice_overrides(tmp_path / "out", run, 4, "export=false"))
    out = run_training("rice", CONFIG, rice_overrides(tmp_path / "out", run, 4, "export=false",
                                                      "loop.follow_new_shards=true"))
    assert [h["step"] for h in out["history"]] == [4]
    meta = json.loads((run / "checkpoints" / "step-00000004" / "meta.json").read_text())
    assert [(s["name"], s["join_epoch"]) for s in meta["shards"]] == [
        ("part-00000.parquet", 0), ("part-00001.parquet", 0), ("part-00002.parquet", 1)]
    os.remove(tmp_path / "out" / "train" / "part-00001.parquet")
    cli = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "train", "rice", CONFIG,
                          *rice_overrides(tmp_path / "out", run, 6, "export=false")],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2, cli.stderr[-2000:]
    assert cli.stderr.strip().count("\n") == 0 and "part-00001.parquet" in cli.stderr  # one line, names it


def fake_build(out: str) -> dict:
    """The lineage files a build leaves, written by the pipeline's own writers."""
    paths = write_synthetic_shards(out, num_shards=2, rows_per_shard=8, size=32)
    hashes = {}
    for i, p in enumerate(paths):
        hashes[os.path.basename(p)] = file_sha256(p)
        write_marker(Output.of(out), Marker(stage="pack", shard=i, config_hash="c", input_hash="i",
                                            output_sha256=hashes[os.path.basename(p)], rows_in=8, rows_out=8,
                                            seconds=0.1))
    add_to_lineage(Output.of(out), "config_hash", "feedc0ffee123456", [])
    add_to_lineage(Output.of(out), "kmeans_tree", {"centroids_sha256": "abcdef012345"}, [])
    append_run(Output.of(out), {"run_id": "20261207T200000-aaaaaa", "finished_at": time.time() - 60,
                                "config_hash": "feedc0ffee123456"})
    append_run(Output.of(out), {"run_id": "20261207T201500-bbbbbb", "finished_at": time.time(),
                                "config_hash": "feedc0ffee123456"})
    return hashes


def test_checkpoint_lineage_and_dry_run(tmp_path):
    torch.set_num_threads(2)
    hashes = fake_build(str(tmp_path / "out"))
    run = tmp_path / "run"
    run_training("rice", CONFIG, rice_overrides(tmp_path / "out", run, 2, "export=false"))
    meta = json.loads((run / "checkpoints" / "step-00000002" / "meta.json").read_text())
    lineage = meta["lineage"]
    assert lineage["build_run_id"] == "20261207T201500-bbbbbb"  # the newest run of the build
    assert lineage["build_config_hash"] == "feedc0ffee123456" and lineage["centroids_sha256"] == "abcdef012345"
    assert {s["name"]: s["marker_sha256"] for s in lineage["shards"]} == hashes
    assert len(meta["config_hash"]) == 16

    cli = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "train", "rice", CONFIG,
                          *rice_overrides(tmp_path / "out", run, 4), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    printed = json.loads(cli.stdout)
    assert printed["dry_run"] and printed["resume_step"] == 2 and printed["resume_from"].endswith("step-00000002")
    assert printed["lineage"]["build_run_id"] == "20261207T201500-bbbbbb"
    assert {s["name"]: s["marker_sha256"] for s in printed["lineage"]["shards"]} == hashes
    assert printed["resume_lineage"] == lineage
    assert not (run / "checkpoints" / "step-00000004").exists()  # nothing trained


def test_lineage_names_the_build_run_given(tmp_path):
    fake_build(str(tmp_path / "out"))
    named = run_training("rice", CONFIG, rice_overrides(tmp_path / "out", tmp_path / "run", 2,
                                                        "data.build_run=20261207T200000-aaaaaa"), dry_run=True)
    assert named["lineage"]["build_run_id"] == "20261207T200000-aaaaaa"  # not the newest: the one named
    assert named["lineage"]["build_run_named"] is True and named["lineage"]["build_config_hash"] == "feedc0ffee123456"
    with pytest.raises(ValueError, match="data.build_run=nope: no run record"):
        run_training("rice", CONFIG, rice_overrides(tmp_path / "out", tmp_path / "run", 2, "data.build_run=nope"),
                     dry_run=True)
