"""The fused ``regions`` step on an object store keeps each part's marker index, as the separate
stages do: after a fused build ``_state/{detect,ocr,embed}/_index.json`` exist, and a resumed fused
build plans from listings and those indexes, reading no marker one by one (loopback S3, moto)."""

from __future__ import annotations

import json

from regionset.common.storage import as_path
from regionset.pipelines.build import build
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)
from tests.storage.test_s3_planning import reads  # noqa: F401 (fixture)

PARTS = ("detect", "ocr", "embed")


def test_fused_step_saves_each_parts_index_and_resumes_from_them(server, s3, tmp_path, reads):  # noqa: F811
    urls = write_urls(tmp_path, [server.add(f"f{i}.jpg", make_jpeg(360 + 8 * i, 360)) for i in range(4)])
    out = s3.url("fused-index")
    cfg = download_only(out, urls, shard_size=2, extra=["steps=[download,regions]", "executor.processes=1"])
    first = build(cfg)
    assert [r.done for r in first.reports if r.stage == "regions"] == [2]
    keys = s3.keys("fused-index")
    for part in PARTS:
        assert f"_state/{part}/_index.json" in keys, part
        index = json.loads(as_path(f"{out}/_state/{part}/_index.json").read_text())
        assert sorted(index["markers"]) == ["0", "1"] and index["stage"] == part
    reads.update(marker=0, sha256=0)
    again = build(cfg)  # a new build forgets what this process knew: indexes and listings only
    assert [(r.done, r.skipped) for r in again.reports if r.stage == "regions"] == [(0, 2)]
    assert reads == {"marker": 0, "sha256": 0}
