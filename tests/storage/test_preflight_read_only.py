"""The preflight tells "can read but not write" from "no access" on the store's own answers, not on
one test server's emulation: fake fsspec stores (named ``Fake…``) that refuse writes, with and
without a permitted listing, give the two different one-line causes."""

from __future__ import annotations

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.preflight.storage import check_remote_output


class FakeReadOnlyStore(MemoryFileSystem):
    """Lists and reads; every write is refused as S3 refuses it (``PermissionError``)."""

    protocol = "fakereadonly"
    store: dict = {}  # noqa: RUF012 - its own store, apart from memory://
    pseudo_dirs = [""]  # noqa: RUF012

    def _open(self, path, mode="rb", **kwargs):
        if "r" not in mode:
            raise PermissionError(f"Access Denied: PutObject {path}")
        return super()._open(path, mode, **kwargs)


class FakeNoAccessStore(FakeReadOnlyStore):
    """Refuses writes and listings alike (bad credentials or a policy that grants nothing)."""

    protocol = "fakenoaccess"
    store: dict = {}  # noqa: RUF012

    def ls(self, path, detail=True, **kwargs):
        raise PermissionError(f"Access Denied: ListObjectsV2 {path}")


@pytest.fixture(autouse=True)
def _fake_stores():
    for cls in (FakeReadOnlyStore, FakeNoAccessStore):
        fsspec.register_implementation(cls.protocol, cls, clobber=True)
    yield


def test_write_refused_listing_allowed_is_read_only():
    check = check_remote_output(BuildConfig(output="fakereadonly://bucket/out"))
    assert check.status == "fail"
    assert "fakereadonly://bucket/out" in check.detail and "can read the bucket but not write" in check.detail


def test_write_and_listing_refused_is_permission_denied():
    check = check_remote_output(BuildConfig(output="fakenoaccess://bucket/out"))
    assert check.status == "fail"
    assert "can read the bucket" not in check.detail and "permission denied" in check.detail
