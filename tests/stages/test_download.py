"""The download stage: img2dataset fetches from loopback; every URL yields exactly one ledger row."""

from __future__ import annotations

import pyarrow as pa

from schemas import images_schema, validate_table
from stages.download.stage import DownloadConfig, DownloadStage, make_key
from tests.conftest import make_jpeg, make_png


def _run(urls: list[str], **cfg) -> pa.Table:
    stage = DownloadStage(DownloadConfig(allow_loopback=True, timeout=2, deadline=3, **cfg))
    stage.ensure_setup()
    keys = [make_key(0, i, 100) for i in range(len(urls))]
    table = pa.table({"key": keys, "url": urls, "caption": [f"c{i}" for i in range(len(urls))]})
    out = stage.process(table)
    validate_table(out, images_schema(), "images")
    assert out.column("key").to_pylist() == keys  # one row per URL, in input order
    return out, stage.take_counters()


def test_ledger_statuses(server):
    server.add("page.html", b"<html><body>not an image</body></html>", "text/html")
    cases = {
        "good jpeg": (server.add("a.jpg", make_jpeg(640, 480)), "success"),
        "good png": (server.add("b.png", make_png(400, 300)), "success"),
        "404": (server.url("status/404"), "failed_to_download"),
        "slow drip": (server.url("slow/8"), "failed_to_download"),
        "corrupt bytes": (server.add("bad.jpg", b"\xff\xd8\xffgarbage"), "failed_to_resize"),
        "html as image": (server.url("as-jpeg/page.html"), "failed_to_resize"),
        "file url": ("file:///etc/passwd", "refused"),
    }
    out, counters = _run([u for u, _ in cases.values()])
    got = dict(zip(cases, out.column("status").to_pylist()))
    assert got == {name: status for name, (_, status) in cases.items()}
    errors = dict(zip(cases, out.column("error_message").to_pylist()))
    assert "404" in errors["404"]
    assert errors["good jpeg"] is None
    assert counters["status:success"] == 2


def test_resize_keeps_ratio_and_records_sizes(server):
    url = server.add("big.jpg", make_jpeg(1200, 800))
    out, _ = _run([url], image_size=512)
    row = out.to_pylist()[0]
    assert (row["original_width"], row["original_height"]) == (1200, 800)
    assert (row["width"], row["height"]) == (768, 512)
    assert row["jpg"][:2] == b"\xff\xd8" and len(row["sha256"]) == 64


def test_private_addresses_refused_by_default(server):
    url = server.add("a.jpg", make_jpeg(64, 64))
    stage = DownloadStage(DownloadConfig(timeout=2))
    stage.ensure_setup()
    out = stage.process(pa.table({"key": ["000000"], "url": [url], "caption": [None]}))
    row = out.to_pylist()[0]
    assert row["status"] == "refused" and "loopback" in row["error_message"]
    assert server.hits == {}


def test_keep_original_stores_the_downloaded_bytes_of_resized_images_only(server):
    big, small = make_jpeg(1200, 800), make_jpeg(400, 300)
    urls = [server.add("big.jpg", big), server.add("small.jpg", small)]
    out, _ = _run(urls, image_size=512, keep_original=True)
    rows = out.to_pylist()
    assert rows[0]["original"] == big and rows[0]["width"] == 768
    assert rows[1]["original"] is None  # not resized: jpg is the full resolution already
    out, _ = _run(urls[:1], image_size=512)
    assert out.column("original").to_pylist() == [None]  # off by default
