"""``status --watch`` on an object-store output (loopback S3): only new markers are read."""

from __future__ import annotations

import json

import pytest

from regionset.common.shard_names import STATE_DIR, shard_name
from regionset.pipelines.core.output import Output
from regionset.pipelines.tools.watch import BuildWatch
from regionset.schemas import INPUT
from tests.s3server import BUCKET, s3  # noqa: F401 (fixture)

T0 = 1_800_000_000.0


def _marker(out: Output, stage: str, shard: int, t: float) -> None:
    (out / STATE_DIR / stage / shard_name(shard).replace(".parquet", ".json")).write_text(json.dumps(
        {"stage": stage, "shard": shard, "rows_in": 4, "seconds": 2.0, "finished_at": t,
         "counters": {"status:success": 4}}))


def test_watch_reads_only_new_markers_on_s3(s3):  # noqa: F811
    out = Output.of(f"s3://{BUCKET}/watch-out")
    for i in range(6):
        (out / INPUT / shard_name(i)).write_bytes(b"x")
    (out / "regionset.yaml").write_text("config: {steps: [download, detect]}\n")
    for i in range(4):
        _marker(out, "download", i, T0 + 10 * (i + 1))
    w = BuildWatch(out, window_s=300)
    d, det = w.refresh(now=T0 + 40)
    assert (d.done, d.total, det.done) == (4, 6, 0)
    assert d.rate == pytest.approx(4 / 32)  # since the first shard started (T0 + 8)
    assert d.eta_s == pytest.approx(2 / (4 / 32))
    _marker(out, "download", 4, T0 + 50)
    d, _ = w.refresh(now=T0 + 50)
    assert d.done == 5 and w.feeds["download"].reads == 5  # the four seen before were not read again
