"""Preflight's exclusive-create probe: a store whose create ignores ``If-None-Match`` is caught."""

from __future__ import annotations

import os

import fsspec
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem

from regionset.pipelines.cli import main
from regionset.pipelines.config import load_config
from regionset.pipelines.preflight.exclusive import check_exclusive_create


class FakeBlindCreateFileSystem(MemoryFileSystem):
    """A fake store (memory:// underneath) whose create-only write ignores the precondition, as
    fsspec's exists-then-write or a gateway that drops ``If-None-Match`` does: every create wins."""

    protocol = ("fakeblind",)

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        return super().pipe_file(path, value, mode="overwrite", **kwargs)


@pytest.fixture(autouse=True)
def _fake_store():
    fsspec.register_implementation("fakeblind", FakeBlindCreateFileSystem, clobber=True)


def _cfg(tmp_path, out: str, **extra) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"output": out, "input": {"path": str(tmp_path / "none.txt")},
                                    "steps": ["download"], "progress": False, **extra}))
    return str(path)


def test_probe_catches_a_store_that_ignores_if_none_match(tmp_path):
    check = check_exclusive_create(load_config(_cfg(tmp_path, f"fakeblind://b{os.getpid()}/out")))
    assert check.status == "fail" and "2 of 2 racing creates won" in check.detail
    assert "output_lock: none" in check.detail


def test_probe_passes_on_memory_and_warns_without_a_lock(tmp_path):
    assert check_exclusive_create(load_config(_cfg(tmp_path, "memory://probe/out"))).status == "ok"
    off = check_exclusive_create(load_config(_cfg(tmp_path, "fakeblind://b/out", output_lock="none")))
    assert off.status == "warn" and "WITHOUT a lock" in off.detail


def test_build_on_a_store_without_exclusive_create_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "none.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    assert main(["build", _cfg(tmp_path, "fakeblind://b/build")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exclusive create is not atomic" in err[0]
    assert not FakeBlindCreateFileSystem().find("b/build")  # nothing written but the deleted probe


def test_unknown_output_lock_is_a_config_error(tmp_path):
    from regionset.common.typed_config import ConfigError

    with pytest.raises(ConfigError, match="output_lock"):
        load_config(_cfg(tmp_path, "memory://x/out", output_lock="maybe"))


def test_output_lock_none_builds_without_a_lock_and_says_so(server, tmp_path, capsys):
    from tests.conftest import make_jpeg

    (tmp_path / "none.txt").write_text(server.add("n.jpg", make_jpeg(64, 64)) + "\n")
    cfg = _cfg(tmp_path, "memory://nolock/out", output_lock="none",
               download={"allow_loopback": True, "timeout": 3})
    assert main(["build", cfg]) == 0
    said = " ".join("".join(capsys.readouterr()).split())  # rich wraps long lines
    assert "WITHOUT a lock" in said and "built with NO lock" in said
    assert not MemoryFileSystem().exists("nolock/out/_state/build.lock")
