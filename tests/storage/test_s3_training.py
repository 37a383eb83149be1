"""``regionset train rice … data.train_dir=s3://…`` reads committed train shards from a loopback S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from regionset.common.storage import as_path
from regionset.training.data import list_shards, read_shard
from regionset.training.synthetic import write_synthetic_shards
from tests.s3server import s3  # noqa: F401 (fixture)


def test_train_rice_from_s3(s3, tmp_path):  # noqa: F811
    local = write_synthetic_shards(str(tmp_path / "synth"), num_shards=2, rows_per_shard=24, size=64)
    root = as_path(s3.url("trainset"))
    for i, path in enumerate(local):
        (root / "train" / Path(path).name).write_bytes(Path(path).read_bytes())
        (root / "_state" / "pack" / f"part-{i:05d}.json").write_text(json.dumps({"stage": "pack", "shard": i}))
    (root / "train" / "part-00002.parquet").write_bytes(b"left by a killed writer: no marker")
    shards = list_shards(str(root))
    assert [Path(s).name for s in shards] == ["part-00000.parquet", "part-00001.parquet"]
    assert read_shard(shards[0], columns=["key"]).num_rows == 24
    run = subprocess.run(
        [sys.executable, "-m", "regionset.pipelines.cli", "train", "rice", "training/configs/rice-tiny.yaml",
         f"data.train_dir={root}", "loop.steps=3", "loop.log_every=1", "loop.save_every=3",
         f"loop.out_dir={tmp_path / 'run'}", "export=false", "data.batch_size=8"],
        env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert max(r.get("step", 0) for r in log) == 3
