"""`regionset retry OUT`: only retryable failures are re-attempted; successes stay untouched."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow.parquet as pq

from regionset.pipelines.build import build
from regionset.pipelines.cli import main
from regionset.pipelines.core.shards import read_marker
from regionset.pipelines.tools.retry import is_retryable
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls


def test_retry_recovers_transient_failures_only(server, tmp_path):
    good = [server.add(f"g{i}.jpg", make_jpeg(200 + i, 150)) for i in range(3)]
    server.add("flaky.jpg", make_jpeg(300, 200))
    urls = good + [server.url("flaky/flaky.jpg?fail=1"), server.url("status/404"), server.url("status/500")]
    out = tmp_path / "out"
    build(download_only(out, write_urls(tmp_path, urls), shard_size=3))
    before = {r["url"]: r for f in sorted((out / "images").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()}
    assert before[urls[3]]["status"] == "failed_to_download" and "503" in before[urls[3]]["error_message"]
    hits = dict(server.hits)

    assert main(["retry", str(out)]) == 0

    after = {r["url"]: r for f in sorted((out / "images").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()}
    assert len(after) == len(urls)
    assert after[urls[3]]["status"] == "success"  # 503 then OK: recovered
    assert after[urls[4]] == before[urls[4]]  # 404 is final: untouched, not re-requested
    assert after[urls[5]]["status"] == "failed_to_download"  # still 500
    for u in good:
        assert after[u] == before[u]
        assert server.hits[urlsplit(u).path] == hits[urlsplit(u).path]  # not downloaded again
    assert server.hits.get("/status/404") == hits.get("/status/404")
    m = read_marker(out, "download", 1)
    assert m.counters["retry:recovered"] == 1 and m.counters["status:success"] == 1


def test_retryable_classification():
    assert is_retryable("failed_to_download", "HTTP Error 503: Service Unavailable")
    assert is_retryable("failed_to_download", "HTTP Error 429: Too Many Requests")
    assert is_retryable("failed_to_download", "timed out: body not complete within 3 s")
    assert not is_retryable("failed_to_download", "HTTP Error 404: Not Found")
    assert not is_retryable("failed_to_resize", "timed out")
    assert not is_retryable("refused", "refused: loopback")
