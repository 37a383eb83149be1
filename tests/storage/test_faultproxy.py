"""The fault-injecting proxy itself (tests/faultproxy.py): each kind does what it says, the
schedule is the seed's, faults are counted, and nothing is disturbed at rate 0."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from tests.faultproxy import KINDS, FaultProxy
from tests.s3server import BUCKET, s3  # noqa: F401 (fixture)


def _signed(endpoint: str, method: str, path: str) -> str:
    """``path`` with a presigned query (the S3 server wants credentials; no retries or parsing)."""
    import boto3

    bucket, key = path.lstrip("/").split("/", 1)
    op = {"GET": "get_object", "PUT": "put_object"}[method]
    url = boto3.client("s3", endpoint_url=endpoint).generate_presigned_url(op, {"Bucket": bucket, "Key": key})
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _request(endpoint: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, int]:
    """(status, body, declared Content-Length) of one plain request (no client retries)."""
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, _signed(endpoint, method, path), body=body)
        resp = conn.getresponse()
        declared = int(resp.getheader("Content-Length") or 0)
        try:
            data = resp.read()
        except http.client.IncompleteRead as err:
            data = err.partial
        return resp.status, data, declared
    finally:
        conn.close()


@pytest.fixture
def put_object(s3):  # noqa: F811
    def put(key: str, data: bytes) -> str:
        assert _request(s3.endpoint, "PUT", f"/{BUCKET}/{key}", data)[0] == 200
        return f"/{BUCKET}/{key}"
    return put


@pytest.mark.parametrize(("kind", "status", "code"), [("throttle", 503, b"<Code>SlowDown</Code>"),
                                                      ("server_error", 500, b"<Code>InternalError</Code>")])
def test_error_kinds_answer_s3_xml(s3, put_object, kind, status, code):  # noqa: F811
    path = put_object("proxy/err.bin", b"abc")
    with FaultProxy(s3.endpoint, rate=1.0, kinds=(kind,)) as px:
        got, body, _ = _request(px.endpoint, "GET", path)
    assert got == status and code in body and body.startswith(b"<?xml")
    assert px.injected == {kind: 1} and [k[:2] for k in px.log] == [(kind, "GET")]


def test_reset_drops_the_connection(s3, put_object):  # noqa: F811
    path = put_object("proxy/reset.bin", b"abc")
    with FaultProxy(s3.endpoint, rate=1.0, kinds=("reset",)) as px:
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            _request(px.endpoint, "GET", path)
    assert px.injected == {"reset": 1}


def test_short_put_stores_a_cut_body_and_short_get_cuts_the_response(s3, put_object):  # noqa: F811
    data = bytes(range(256)) * 40
    with FaultProxy(s3.endpoint, rate=1.0, kinds=("short_put",)) as px:
        assert _request(px.endpoint, "PUT", f"/{BUCKET}/proxy/cut.bin", data)[0] == 200  # acknowledged
    assert _request(s3.endpoint, "GET", f"/{BUCKET}/proxy/cut.bin")[1] == data[: len(data) // 2]
    assert px.stored == {}  # a cut body is not counted as stored whole
    path = put_object("proxy/whole.bin", data)
    with FaultProxy(s3.endpoint, rate=1.0, kinds=("short_get",)) as px:
        status, got, declared = _request(px.endpoint, "GET", path)
    assert status == 200 and declared == len(data) and got == data[: len(data) // 2]


def test_delay_then_forward_and_rate_zero_is_a_plain_proxy(s3, put_object):  # noqa: F811
    path = put_object("proxy/delay.bin", b"payload")
    with FaultProxy(s3.endpoint, rate=1.0, kinds=("delay",), delay=0.05) as px:
        assert _request(px.endpoint, "GET", path)[:2] == (200, b"payload")
    assert px.injected == {"delay": 1}
    with FaultProxy(s3.endpoint, rate=0.0) as px:
        assert _request(px.endpoint, "PUT", f"/{BUCKET}/proxy/plain.bin", b"x")[0] == 200
        assert _request(px.endpoint, "GET", f"/{BUCKET}/proxy/plain.bin")[:2] == (200, b"x")
    assert px.injected == {} and px.requests == 2 and dict(px.stored) == {f"/{BUCKET}/proxy/plain.bin": 1}


def test_schedule_is_the_seeds_and_match_and_limit_narrow_it(s3):  # noqa: F811
    def schedule(seed: int, **kw) -> list[str | None]:
        px = FaultProxy(s3.endpoint, rate=0.3, seed=seed, **kw)
        try:
            return [px.choose("PUT" if i % 3 else "GET", f"/b/k{i % 2}", True) for i in range(200)]
        finally:
            px.stop()

    a, b, c = schedule(7), schedule(7), schedule(8)
    assert a == b and a != c
    assert set(a) == {None, *KINDS} and 30 < sum(k is not None for k in a) < 90
    assert {k for i, k in enumerate(a) if i % 3 == 0} & {"short_put"} == set()  # a GET is never cut as a PUT
    narrowed = schedule(7, match="k1", limit=5)
    assert sum(k is not None for k in narrowed) == 5
    assert all(k is None for i, k in enumerate(narrowed) if i % 2 == 0)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultProxy(s3.endpoint, kinds=("flood",))
