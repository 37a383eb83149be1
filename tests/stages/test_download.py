"""The download stage: img2dataset fetches from loopback; every URL yields exactly one ledger row."""

from __future__ import annotations

import urllib.parse

import pyarrow as pa
import pytest

from regionset.schemas import images_schema, validate_table
from regionset.stages.download import http_guard
from regionset.stages.download.stage import DownloadConfig, DownloadStage, make_key
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


def test_environment_proxies_are_ignored(server, monkeypatch):
    from regionset.pipelines.tools.demo.server import LoopbackServer

    with LoopbackServer() as env_proxy:
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(var, env_proxy.url(""))
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        out, _ = _run([server.add("direct.jpg", make_jpeg(64, 64))])
        assert out.column("status").to_pylist() == ["success"]
        assert env_proxy.hits == {} and server.hits == {"/files/direct.jpg": 1}


def test_configured_proxy_gets_only_checked_targets(server):
    """download.proxy: allowed targets go through the proxy; a refused target never reaches it."""
    from regionset.pipelines.tools.demo.server import LoopbackServer

    with LoopbackServer() as proxy:  # answers absolute-URI requests from its own files: a recording proxy
        proxy.add("via.jpg", make_jpeg(64, 64))
        urls = [server.url("files/via.jpg"), "http://127.0.0.2:9/files/via.jpg"]
        out, _ = _run(urls, proxy=proxy.url("").rstrip("/"), deny_networks=("127.0.0.2/32",))
        rows = out.to_pylist()
        assert rows[0]["status"] == "success"
        assert rows[1]["status"] == "refused" and "denied" in rows[1]["error_message"]
        assert proxy.hits == {"/files/via.jpg": 1} and server.hits == {}
        via_redirect = server.url("redirect-to?url=" + urllib.parse.quote("http://127.0.0.2:9/x.jpg", safe=""))
        out, _ = _run([via_redirect], proxy=proxy.url("").rstrip("/"), deny_networks=("127.0.0.2/32",))
        assert out.column("status").to_pylist() == ["refused"]  # the proxy answered the redirect itself
        # The proxy handler checks the target itself too (not only the stage's first-URL check).
        with pytest.raises(http_guard.RefusedRedirect, match="proxied url"):
            http_guard.guarded_opener(proxy.url("").rstrip("/")).open("http://127.0.0.2:9/x.jpg", timeout=2)
        with pytest.raises(http_guard.RefusedRedirect, match="cannot resolve"):  # not handed over unchecked
            http_guard.guarded_opener(proxy.url("").rstrip("/")).open("http://no-such-host.invalid/x.jpg", timeout=2)
        assert "/x.jpg" not in proxy.hits

def test_keep_original_stores_the_downloaded_bytes_of_resized_images_only(server):
    big, small = make_jpeg(1200, 800), make_jpeg(400, 300)
    urls = [server.add("big.jpg", big), server.add("small.jpg", small)]
    out, _ = _run(urls, image_size=512, keep_original=True)
    rows = out.to_pylist()
    assert rows[0]["original"] == big and rows[0]["width"] == 768
    assert rows[1]["original"] is None  # not resized: jpg is the full resolution already
    out, _ = _run(urls[:1], image_size=512)
    assert out.column("original").to_pylist() == [None]  # off by default
