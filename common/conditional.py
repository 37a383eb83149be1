"""Conditional writes on an object store: create-if-absent and compare-and-swap on a version.

A version is what the store says changes whenever an object is rewritten: the S3 ETag (``PutObject``
with ``If-None-Match: *`` creates only when absent, with ``If-Match: <etag>`` replaces only that
version). fsspec's ``memory://`` (one process) gets the same contract from a process-wide lock and a
content hash as its version, so tests run there too. Other stores (GCS generation preconditions,
Azure) are not reached through this layer yet: asking for a compare-and-swap there raises
``ConditionalWriteUnsupported``, which preflight turns into exit 2 (README "Object storage").

A read error is never "missing": only a store's not-found answer gives ``None``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from regionset.common.store_retry import ShortWriteError, check_stored, content_md5

_MEMORY_LOCK = threading.Lock()  # memory:// lives in this process: one lock makes its writes atomic
_PRECONDITION = ("PreconditionFailed", "pre-conditions you specified", "412")


class ConditionalWriteUnsupported(RuntimeError):
    """The store has no conditional write reachable from here."""


def _is_s3(fs: Any) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _is_memory(fs: Any) -> bool:
    from fsspec.implementations.memory import MemoryFileSystem

    return isinstance(fs, MemoryFileSystem)


def _failed_precondition(err: BaseException) -> bool:
    return isinstance(err, FileExistsError) or any(s in str(err) for s in _PRECONDITION)


def supports_compare_and_swap(path: Any) -> bool:
    """Whether ``put_if_version`` works on the store of ``path`` (a ``RemotePath``).

    Args:
        path: a ``RemotePath``.
    """
    return _is_s3(path.fs) or _is_memory(path.fs)


def read_versioned(path: Any) -> tuple[bytes, str] | None:
    """``(bytes, version)`` of an object, or None when the store says it does not exist.

    The version is read first, then the bytes: if the object changes in between, the version is the
    older one and a compare-and-swap on it fails (never succeeds on bytes it did not see).

    Args:
        path: a ``RemotePath``.
    """
    fs = path.fs
    if _is_memory(fs):
        with _MEMORY_LOCK:
            try:
                data = fs.cat_file(path.key)
            except FileNotFoundError:
                return None
        return bytes(data), hashlib.md5(data).hexdigest()  # noqa: S324 - a version token, not security
    if not _is_s3(fs):
        raise ConditionalWriteUnsupported(f"{path.protocol}:// has no versioned read here (S3 and memory:// do)")
    try:
        version = fs.info(path.key, refresh=True)["ETag"]
        data = fs.cat_file(path.key)
    except FileNotFoundError:
        return None
    return data, version


def put_if_absent(path: Any, data: bytes) -> str | None:
    """Create the object only if absent; its new version, or None when it exists already.

    Args:
        path: a ``RemotePath``.
        data: the object's bytes.
    """
    fs = path.fs
    if _is_memory(fs):
        with _MEMORY_LOCK:
            try:
                fs.pipe_file(path.key, data, mode="create")
            except FileExistsError:
                return None
        return hashlib.md5(data).hexdigest()  # noqa: S324 - a version token, not security
    if _is_s3(fs):
        bucket, key, _ = fs.split_path(path.key)
        try:
            etag = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                              ContentMD5=content_md5(data))["ETag"]
        except Exception as err:  # s3fs maps the 412 to FileExistsError or OSError by version
            if _failed_precondition(err):
                return None
            raise
        return _whole(path, data, etag)
    try:  # other stores: fsspec's create mode (a backend may make it atomic; preflight probes it)
        fs.pipe_file(path.key, data, mode="create")
    except Exception as err:
        if _failed_precondition(err):
            return None
        raise
    return "created"


def put_if_version(path: Any, data: bytes, version: str) -> str | None:
    """Replace the object only if its version is still ``version``; the new version, or None when the
    object changed or is gone.

    Args:
        path: a ``RemotePath``.
        data: the new bytes.
        version: the version read before (``read_versioned``).
    """
    fs = path.fs
    if _is_memory(fs):
        with _MEMORY_LOCK:
            try:
                current = fs.cat_file(path.key)
            except FileNotFoundError:
                return None
            if hashlib.md5(current).hexdigest() != version:  # noqa: S324
                return None
            fs.pipe_file(path.key, data)
        return hashlib.md5(data).hexdigest()  # noqa: S324
    if not _is_s3(fs):
        raise ConditionalWriteUnsupported(f"{path.protocol}:// has no compare-and-swap here (S3 and memory:// do)")
    bucket, key, _ = fs.split_path(path.key)
    try:
        etag = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=version,
                          ContentMD5=content_md5(data))["ETag"]
    except FileNotFoundError:
        return None
    except Exception as err:
        if _failed_precondition(err) or "NoSuchKey" in str(err):
            return None
        raise
    return _whole(path, data, etag)


def _whole(path: Any, data: bytes, etag: str, attempts: int = 3) -> str:
    """``etag`` when the object it names holds all of ``data``; else (a body cut short on the way,
    acknowledged by a store that checks no checksum) ``data`` is written again over that very version,
    at most ``attempts`` times, and the last good version returned."""
    for _ in range(attempts):
        try:
            check_stored(path.fs, path.key, data, etag)
            return etag
        except ShortWriteError:
            bucket, key, _ = path.fs.split_path(path.key)
            etag = path.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=etag,
                                   ContentMD5=content_md5(data))["ETag"]
    check_stored(path.fs, path.key, data, etag)
    return etag
