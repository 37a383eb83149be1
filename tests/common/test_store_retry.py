"""common/store_retry.py: which errors are retried and under which reason, the bounds (count and
time), the one-line error past them, the counts, and the verified PUT (with fake filesystems)."""

from __future__ import annotations

import hashlib

import pytest

from regionset.common import store_retry
from regionset.common.store_retry import ShortWriteError, StoreError, classify, put_verified, retrying


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(store_retry, "BASE_S", 0.001)
    store_retry.take_retry_counts()
    yield
    store_retry.take_retry_counts()


@pytest.mark.parametrize(("err", "reason"), [
    (OSError(16, "Please reduce your request rate."), "throttle"),
    (OSError(121, "We encountered an internal error. Please try again."), "server_error"),
    (ConnectionResetError("Connection reset by peer"), "connection"),
    (TimeoutError("read timed out"), "timeout"),
    (OSError("Response payload is not completed: ContentLengthError"), "short_body"),
    (ShortWriteError("stored object has 0 bytes, 10 were sent"), "short_write"),
    (FileNotFoundError("s3://b/k"), None),
    (PermissionError("Access Denied"), None),
    (ValueError("bad"), None),
])
def test_classify(err, reason):
    assert classify(err) == reason


def test_retries_until_success_and_counts_by_reason():
    errors = [OSError("SlowDown"), ConnectionResetError("reset")]

    def call():
        if errors:
            raise errors.pop(0)
        return "ok"

    assert retrying("GET s3://b/k", call) == "ok"
    assert store_retry.take_retry_counts() == {"throttle": 1, "connection": 1}


def test_bounded_in_count_then_one_line_error():
    calls = []

    def call():
        calls.append(1)
        raise OSError("We encountered an internal error.\nPlease try again.")

    with pytest.raises(StoreError) as err:
        retrying("PUT s3://b/k", call, attempts=3)
    assert len(calls) == 3 and "\n" not in str(err.value)
    assert str(err.value).startswith("PUT s3://b/k: still failing after 3 attempts (server_error)")
    assert store_retry.retry_counts() == {"server_error": 2}


def test_bounded_in_time():
    calls = []

    def call():
        calls.append(1)
        raise TimeoutError("timed out")

    with pytest.raises(StoreError, match="after 1 attempts"):
        retrying("GET s3://b/k", call, attempts=100, deadline_s=0.0)
    assert len(calls) == 1


def test_not_retryable_is_raised_at_once():
    calls = []

    def call():
        calls.append(1)
        raise FileNotFoundError("s3://b/missing")

    with pytest.raises(FileNotFoundError):
        retrying("GET s3://b/missing", call)
    assert len(calls) == 1 and store_retry.retry_counts() == {}


def test_take_since_moves_a_shards_retries_out_of_the_process_counts():
    store_retry.count_retry("throttle", 2)
    before = store_retry.retry_counts()
    store_retry.count_retry("throttle")
    store_retry.count_retry("short_write")
    assert store_retry.take_since(before) == {"throttle": 1, "short_write": 1}
    assert {k: v for k, v in store_retry.retry_counts().items() if v} == {"throttle": 2}


class FakeS3:
    """A fake s3fs: stores the first ``keep`` share of what a PUT sends and answers its MD5 as ETag."""

    protocol = ("s3", "s3a")

    def __init__(self, keep: float = 1.0, etag: str | None = None) -> None:
        self.keep, self.etag, self.objects, self.kwargs = keep, etag, {}, []

    def pipe_file(self, key, data, **kwargs):
        self.kwargs.append(kwargs)
        self.objects[key] = data[: int(len(data) * self.keep)]
        return {"ETag": f'"{self.etag or hashlib.md5(self.objects[key]).hexdigest()}"'}

    def info(self, key):
        return {"size": len(self.objects[key])}


def test_put_verified_refuses_a_cut_object():
    fs = FakeS3()
    put_verified(fs, "b/k", b"0123456789")
    assert fs.objects["b/k"] == b"0123456789" and "ContentMD5" in fs.kwargs[0]
    with pytest.raises(ShortWriteError, match="0 bytes"):
        put_verified(FakeS3(keep=0.0), "b/k", b"0123456789")
    with pytest.raises(ShortWriteError, match="5 bytes"):  # an ETag that is no MD5 (SSE-KMS): the size decides
        put_verified(FakeS3(keep=0.5, etag="0" * 32), "b/k", b"0123456789")
    put_verified(FakeS3(etag="0" * 32), "b/k", b"0123456789")  # whole, under an ETag that is no MD5: fine
