"""Bounded retries of object-store calls, counted by reason (docs/storage.md "Store faults").

Two layers retry a failing S3 request: botocore retries each request (``library_attempts()``
attempts, 5 unless ``AWS_MAX_ATTEMPTS`` says otherwise; its default legacy mode retries 500/502/503/504,
throttling codes, connection errors, ``BadDigest``) and s3fs retries
some errors again (``SlowDown``, timeouts, short reads). ``retrying`` adds a third, outermost layer
around whole regionset operations for what those two let through: a response body cut short or
failing its checksum, a PUT whose stored object does not match the bytes sent (``ShortWriteError``),
and errors the libraries gave up on. It is bounded in attempts (``ATTEMPTS``) and time
(``DEADLINE_S``), sleeps with exponential backoff and full jitter, and raises ``StoreError`` (one
line) when the bound is reached.

Every retry, at either layer, is counted in this process by reason (``REASONS``):
``retry_counts()`` reads the counts, ``take_retry_counts()`` reads and resets them. A build shows
them in its summary and records them in its run record (``_state/runs/*.json``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

REASONS = ("throttle", "server_error", "connection", "timeout", "short_body", "short_write")
ATTEMPTS = 4  # regionset's attempts per operation (each one made of botocore's and s3fs's)
DEADLINE_S = 120.0  # no new attempt starts after this many seconds
BASE_S, CAP_S = 0.2, 5.0  # backoff: uniform(0, min(CAP_S, BASE_S * 2**attempt))

_counts: Counter = Counter()
_lock = threading.Lock()
T = TypeVar("T")


class StoreError(OSError):
    """An object-store operation that still failed after the bounded retries (one line)."""


class ShortWriteError(OSError):
    """A PUT the store acknowledged, whose stored object is not the bytes sent (size or MD5 differ)."""


def library_attempts() -> int:
    """botocore's attempts per request: ``AWS_MAX_ATTEMPTS`` (the AWS SDKs' setting), else 5."""
    try:
        return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS", "5")))
    except ValueError:
        return 5


def count_retry(reason: str, n: int = 1) -> None:
    """Count ``n`` retries for ``reason`` in this process.

    Args:
        reason: one of ``REASONS``.
        n: how many.
    """
    with _lock:
        _counts[reason] += n


def retry_counts() -> dict[str, int]:
    """Retries by reason in this process so far."""
    with _lock:
        return dict(_counts)


def take_retry_counts() -> dict[str, int]:
    """Retries by reason in this process so far, and reset them to zero."""
    with _lock:
        got = dict(_counts)
        _counts.clear()
        return got


def take_since(before: dict[str, int]) -> dict[str, int]:
    """Retries counted since ``before`` (a ``retry_counts()``), taken out of this process's counts
    (so a shard's retries travel in its marker and are not counted twice by an in-process driver).

    Args:
        before: the counts at the start.
    """
    with _lock:
        got = {k: v - before.get(k, 0) for k, v in _counts.items() if v > before.get(k, 0)}
        _counts.subtract(got)
        return got


RETRY_PREFIX = "store_retry:"  # a shard's retries in its marker's ``timings`` (they vary run to run)


def _text(err: BaseException) -> str:
    return f"{type(err).__name__} {err}"


def classify(err: BaseException) -> str | None:
    """The retry reason of an error (``REASONS``), or None when retrying cannot help (missing
    object, access denied, a precondition failed, a bad request).

    Args:
        err: the error raised by the storage client.
    """
    if isinstance(err, ShortWriteError):
        return "short_write"
    if isinstance(err, FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError | ValueError):
        return None
    text = _text(err)
    if any(s in text for s in ("FlexibleChecksumError", "ContentLengthError", "IncompleteRead",
                               "ClientPayloadError", "Response payload is not completed", "BadDigest")):
        return "short_body"
    if any(s in text for s in ("SlowDown", "reduce your request rate", "Throttl", "TooManyRequests", "(503)")):
        return "throttle"
    if isinstance(err, TimeoutError | socket.timeout | asyncio.TimeoutError) or "Timeout" in text:
        return "timeout"
    if isinstance(err, ConnectionError) or any(s in text for s in (
            "EndpointConnectionError", "ConnectionClosedError", "Could not connect", "ServerDisconnected",
            "ClientOSError", "Connection reset", "Connection aborted")):
        return "connection"
    if any(s in text for s in ("InternalError", "internal error", "ServiceUnavailable", "(500)", "(502)",
                               "(504)", "Bad Gateway")):
        return "server_error"
    return None


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to sleep before attempt ``attempt + 1``: full jitter over an exponential cap.

    Args:
        attempt: attempts made so far (1 after the first failure).
        rng: the random source (default: the module's).
    """
    return (rng or random).uniform(0.0, min(CAP_S, BASE_S * 2 ** attempt))


def retrying(what: str, call: Callable[[], T], attempts: int | None = None, deadline_s: float | None = None) -> T:
    """``call()``, retried on retryable store errors (``classify``), bounded in count and time.

    Args:
        what: the operation and object, for the error message (``PUT s3://b/k``).
        call: the operation; it must be safe to repeat (whole-object GET or PUT, HEAD, LIST).
        attempts: at most this many calls (default ``ATTEMPTS``).
        deadline_s: no call starts after this many seconds (default ``DEADLINE_S``).

    Raises:
        StoreError: the last error was retryable but the bound was reached.
    """
    attempts = attempts or ATTEMPTS
    deadline = time.monotonic() + (deadline_s if deadline_s is not None else DEADLINE_S)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:  # noqa: BLE001 (classified below; the rest re-raised as is)
            reason = classify(err)
            if reason is None:
                raise
            pause = backoff(attempt)
            if attempt == attempts or time.monotonic() + pause > deadline:
                raise StoreError(f"{what}: still failing after {attempt} attempts ({reason}): "
                                 f"{' '.join(str(err).split())[:300]}") from err
            count_retry(reason)
            time.sleep(pause)
    raise AssertionError("unreachable")


def _response_reason(response: Any, caught: BaseException | None) -> str | None:
    if caught is not None:
        return classify(caught)
    if not response:
        return None
    http, parsed = response
    code = str((parsed or {}).get("Error", {}).get("Code", ""))
    status = getattr(http, "status_code", 200)
    if code in ("SlowDown", "Throttling", "ThrottlingException", "TooManyRequests") or status in (429, 503):
        return "throttle"
    if code == "BadDigest":
        return "short_write"
    if code == "RequestTimeout":
        return "timeout"
    if status >= 500:
        return "server_error"
    return None


def count_library_retries(session: Any) -> Any:
    """Count botocore's own retries: register a ``needs-retry`` observer on an (aiobotocore) session
    before its clients are made. It only counts; botocore still decides (``library_attempts()``).

    Args:
        session: a botocore or aiobotocore session.
    """
    limit = library_attempts()

    def observe(attempts: int = 0, response: Any = None, caught_exception: BaseException | None = None,
                **_: Any) -> None:
        reason = _response_reason(response, caught_exception)
        if reason is not None and attempts < limit:
            count_retry(reason)

    session.register("needs-retry.s3", observe)
    return session


def put_verified(fs: Any, key: str, data: bytes) -> None:
    """One PUT of ``data`` that the store must prove it stored whole. S3 gets ``Content-MD5`` (a
    store that checks it refuses a cut body with ``BadDigest``); then the stored object's ETag must
    be the MD5 of ``data``, or else (SSE-KMS and multipart ETags are no MD5; a cut body's is another)
    its size, read with one HEAD, must be ``len(data)``. A mismatch is a ``ShortWriteError``, which
    ``retrying`` redoes.

    Args:
        fs: the fsspec filesystem.
        key: the object's key (``bucket/path``).
        data: the object's bytes.
    """
    s3 = "s3" in getattr(fs, "protocol", ())
    extra = {"ContentMD5": content_md5(data)} if s3 else {}
    reply = fs.pipe_file(key, data, **extra)
    etag = str((reply or {}).get("ETag", "")) if isinstance(reply, dict) else ""
    if s3 or etag:
        check_stored(fs, key, data, etag)


def content_md5(data: bytes) -> str:
    """The ``Content-MD5`` header of a PUT of ``data`` (base64 of the MD5 digest)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def check_stored(fs: Any, key: str, data: bytes, etag: str) -> None:
    """Raise ``ShortWriteError`` unless the object a PUT of ``data`` answered with ``etag`` holds all
    of ``data``: the ETag is its MD5, or else (SSE-KMS and multipart ETags are no MD5) its size, read
    with one HEAD, is ``len(data)``. For any PUT, conditional ones too (``If-Match`` writes).

    Args:
        fs: the fsspec filesystem.
        key: the object's key (``bucket/path``).
        data: the bytes sent.
        etag: the ETag the PUT answered (quotes allowed; empty when none).
    """
    etag = etag.strip('"').lower()
    if etag == hashlib.md5(data, usedforsecurity=False).hexdigest():
        return
    size = int(fs.info(key)["size"])
    if size != len(data):
        raise ShortWriteError(f"stored object has {size} bytes, {len(data)} were sent (ETag {etag or 'none'})")
