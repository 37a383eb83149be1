"""``regionset retry``, ``regionset sample`` and the Croc readers on ``s3://`` paths (loopback moto server).

Each goes through ``regionset.common.storage`` like the build: the same results as from a local folder, and
objects a killed writer left (no marker) are never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from regionset.common.storage import as_path
from regionset.pipelines.build import build
from regionset.pipelines.cli import main
from regionset.pipelines.core.shards import read_marker, read_table, shard_path, write_table
from regionset.pipelines.tools.sample import sample_regions
from regionset.schemas import LABELS, labels_schema
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)
from tests.training.croc.conftest import tiny_config, write_caption_shards


def test_retry_on_s3_recovers_transient_failures(server, s3, tmp_path):  # noqa: F811
    server.add("flaky.jpg", make_jpeg(300, 200))
    urls = [server.add("g.jpg", make_jpeg(200, 150)), server.url("flaky/flaky.jpg?fail=1"), server.url("status/404")]
    out = s3.url("retry")
    build(download_only(out, write_urls(tmp_path, urls), shard_size=3))
    assert main(["retry", out]) == 0
    rows = {r["url"]: r for r in read_table(shard_path(as_path(out), "images", 0)).to_pylist()}
    assert rows[urls[1]]["status"] == "success" and rows[urls[2]]["status"] == "failed_to_download"
    marker = read_marker(as_path(out), "download", 0)
    assert marker.counters["retry:recovered"] == 1  # the marker was rewritten after the shard
    again = build(download_only(out, write_urls(tmp_path, urls), shard_size=3))
    assert again.reports[0].skipped == 1  # the retried shard stays complete: not downloaded again


def _labels(n: int, shard: int) -> pa.Table:
    rows = [{"region_id": f"r{shard}-{i:03d}", "key": f"{shard:05d}{i:04d}", "source": "object",
             "cluster_path": [i % 3, 3 + i % 5], "cluster_id": 3 + i % 5, "distance": 0.1, "token_ids": None}
            for i in range(n)]
    return pa.Table.from_pylist(rows, labels_schema())


def test_sample_from_s3_matches_local_and_skips_unmarked(s3, tmp_path):  # noqa: F811
    remote = as_path(s3.url("sample"))
    for root in (tmp_path, remote):
        for shard in (0, 1):
            write_table(_labels(40, shard), shard_path(root, LABELS, shard))
    for shard in (0, 1):  # the assign step's markers commit the shards on an object store
        (remote / "_state" / "assign" / f"part-{shard:05d}.json").write_text(json.dumps({"shard": shard}))
    write_table(_labels(40, 2), shard_path(remote, LABELS, 2))  # left by a killed writer: no marker
    local = sample_regions(tmp_path, 30, "balanced", seed=3)
    assert sample_regions(remote, 30, "balanced", seed=3).equals(local)
    assert main(["sample", str(remote), "--size", "30", "--seed", "3", "--to", s3.url("picked.parquet")]) == 0
    picked = pq.read_table(pa.BufferReader(as_path(s3.url("picked.parquet")).read_bytes()))
    assert picked.to_pylist() == local.to_pylist()


def _upload_train(local: str, remote) -> None:
    for i, path in enumerate(sorted(Path(local, "train").glob("part-*.parquet"))):
        (remote / "train" / path.name).write_bytes(path.read_bytes())
        (remote / "_state" / "pack" / f"part-{i:05d}.json").write_text(json.dumps({"stage": "pack", "shard": i}))
    (remote / "train" / "part-00009.parquet").write_bytes(b"left by a killed writer: no marker")


def test_croc_captions_and_conversations_from_s3(s3, tmp_path):  # noqa: F811
    from regionset.training.croc.build import build_croc, build_stream, tokenizer_texts

    local = str(tmp_path / "out")
    write_caption_shards(local)
    remote = as_path(s3.url("croc"))
    _upload_train(local, remote)
    cfg = tiny_config(str(remote), str(tmp_path / "run"))
    assert tokenizer_texts(cfg) == tokenizer_texts(tiny_config(local, str(tmp_path / "run-local")))
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    batch = next(iter(build_stream(cfg, task, tok, epochs=1)))
    assert batch["images"].shape[0] == 8

    key = pq.read_table(os.path.join(local, "train", "part-00001.parquet"), columns=["key"])["key"][0].as_py()
    conv = remote / "conv.jsonl"
    conv.write_text(json.dumps({"id": "1", "image": key, "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "Shapes."}]}))
    cfg2 = tiny_config(str(remote), str(tmp_path / "run2"), stage="2",
                       overrides=["data.source=conversations", f"data.conversations.path={conv}",
                                  "data.max_length=200"])
    task2, tok2 = build_croc(cfg2, cfg2.loop.out_dir)
    batches = list(build_stream(cfg2, task2, tok2, epochs=1))
    assert sum(b["images"].shape[0] for b in batches) == 1  # the image came from the s3 train shard
