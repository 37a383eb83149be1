"""The object-store lease: conditional takeover races, clock skew, lost renewals, fenced commits.

Run on fsspec ``memory://`` and on the loopback S3 server (``tests/s3server.py``).
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time

import pytest

from regionset.common.conditional import put_if_absent, read_versioned
from regionset.common.liveness import holder_dead, this_process
from regionset.common.storage import as_path
from regionset.pipelines.core import lease as lease_mod
from regionset.pipelines.core.fence import Fence, LockedError, arm, armed, check_commit
from regionset.pipelines.core.lease import LeaseLock
from regionset.pipelines.core.output import Output, _output_in_worker
from regionset.pipelines.core.shards import write_json
from tests.s3server import s3  # noqa: F401 (fixture)

ROUNDS = 50


@pytest.fixture(params=["memory", "s3"])
def store(request, tmp_path):
    """A fresh output prefix on memory:// or on the S3 test server."""
    if request.param == "memory":
        return f"memory://lease-{os.urandom(4).hex()}/out"
    return request.getfixturevalue("s3").url(f"lease-{os.urandom(4).hex()}")


def _stale_lease(url: str, token: int, dead_here: bool) -> None:
    """Write the lease of a dead build: on this host with a gone pid, or elsewhere with a short lease."""
    holder = {**this_process(), "pid": 2**22 + 7, "start_time": "1"} if dead_here else {
        "pid": 1, "host": "elsewhere", "boot_id": "another-boot", "pid_ns": "pid:[1]", "start_time": "1"}
    doc = {"holder": holder, "owner": "dead", "token": token, "lease_seconds": 0.1, "beat": token}
    (as_path(url) / "_state/build.lock").write_bytes(json.dumps(doc).encode())


def _race(store: str) -> list[tuple]:
    """Two contenders released together on ``store``; what each got: ("won", token) or ("refused", msg)."""
    start = threading.Barrier(2)
    done = threading.Event()
    results: list[tuple] = []

    def contend() -> None:
        lock = LeaseLock(store, lease_seconds=0.2)
        start.wait(timeout=30)
        try:
            with lock:
                results.append(("won", lock.info["token"]))
                done.wait(timeout=30)  # hold it until the other contender has its answer
        except LockedError as err:
            results.append(("refused", str(err)))
            done.set()

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_fifty_rounds_two_contenders_one_stale_lease(store):
    """Every round, two contenders race for one stale lease (its holder dead on this host, or silent
    elsewhere for its lease): exactly one holds it (token + 1), the other gets LockedError naming it."""
    for r in range(ROUNDS):
        _stale_lease(store, token=r + 1, dead_here=r % 2 == 0)
        results = _race(store)
        won = [x for x in results if x[0] == "won"]
        refused = [x for x in results if x[0] == "refused"]
        assert len(won) == 1 and len(refused) == 1, (r, results)
        assert won[0][1] == r + 2  # one takeover: the token grew by exactly one
        assert f"token {r + 2}" in refused[0][1]


def test_contender_with_clock_ten_minutes_ahead_does_not_take_a_live_lease(store):
    with LeaseLock(store, lease_seconds=0.6) as held:
        ahead = LeaseLock(store, wall=lambda: time.time() + 600, clock=lambda: time.monotonic() + 600)
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            ahead.__enter__()
        held.check()  # still the holder
    behind = LeaseLock(store, wall=lambda: time.time() - 600)
    with behind:  # released: taken at once whatever the clock says
        assert behind.info["token"] == 2


def test_lost_renewal_stops_the_next_commit_naming_the_new_holder(store, monkeypatch):
    out = Output(store)
    with out.lock(lease_seconds=0.3) as old:
        write_json({"ok": 1}, out / "_state" / "a.json")  # a commit while held
        # the old holder stalls: its renewals fail (a store error), and a new build takes over
        cas = lease_mod.put_if_version

        def failing_for_old(path, data, version):
            if old.info["owner"].encode() in data:
                raise OSError("store unavailable")
            return cas(path, data, version)

        monkeypatch.setattr(lease_mod, "put_if_version", failing_for_old)
        new = LeaseLock(store, lease_seconds=5)
        with new:
            arm(store, old)  # the old holder's process (one process plays both here)
            with pytest.raises(LockedError, match=f"token {new.info['token']}|lease lost"):
                write_json({"stale": 1}, out / "_state" / "b.json")
            assert not (out / "_state" / "b.json").exists()
            old._renewer.join(timeout=10)
            assert old.lost is not None and "could not renew" in old.lost
            with pytest.raises(LockedError, match="could not renew"):
                old.check()


def test_a_read_error_is_not_missing(store, monkeypatch):
    with LeaseLock(store, lease_seconds=5):
        def broken(path):
            raise OSError("connection reset")

        monkeypatch.setattr(lease_mod, "read_versioned", broken)
        with pytest.raises(LockedError, match="cannot read .*connection reset"):  # never "absent, take it"
            LeaseLock(store).__enter__()


def test_workers_get_the_fence_with_the_output_and_stale_tokens_are_refused(store):
    out = Output(store)
    with out.lock(lease_seconds=5) as held:
        shipped = pickle.dumps(out)
        assert armed(store) is held
    # a worker process that received the Output while the build held the lease
    worker_out = pickle.loads(shipped)
    fence = armed(store)
    assert isinstance(fence, Fence) and fence.token == held.info["token"]
    with LeaseLock(store, lease_seconds=5) as newer:  # the next build took it (token 2)
        arm(store, fence)  # the worker's process (one process plays both here)
        with pytest.raises(LockedError, match=f"token {newer.info['token']}"):
            check_commit(worker_out / "_state" / "download" / "part-00000.json")
    _output_in_worker(store, None)  # an Output shipped while no lock is held disarms the fence
    assert armed(store) is None


def test_exclusive_create_and_versioned_read(store):
    p = as_path(store) / "obj"
    assert read_versioned(p) is None
    v1 = put_if_absent(p, b"one")
    assert v1 is not None and put_if_absent(p, b"two") is None
    assert read_versioned(p) == (b"one", v1)


def test_liveness_needs_the_same_boot_and_pid_namespace():
    me = this_process()
    assert not holder_dead(me)
    assert holder_dead({**me, "start_time": "1"})  # this pid, but another process (reused pid)
    assert not holder_dead({**me, "pid": 2**22 + 7, "boot_id": "another-boot"})  # another host
    assert not holder_dead({**me, "pid": 2**22 + 7, "pid_ns": "pid:[1]"})  # another PID namespace
    assert not holder_dead({"pid": 2**22 + 7, "host": me["host"]})  # hostname + pid alone: not judged
