"""The object-store lock: a lease object taken and renewed only by conditional writes.

- Taken with ``If-None-Match: *`` (``put_if_absent``); renewed, released and taken over only by a
  compare-and-swap on the version this holder last saw (S3 ``If-Match: <etag>``), so two
  contenders can never both win, and a renewal never overwrites a newer holder.
- Stale when the contender saw the same version for the holder's ``lease_seconds`` on its *own*
  monotonic clock (never by comparing two hosts' wall clocks), when it was released, or when its
  process is provably gone on this host (``common/liveness.py``). A read error is an error, never
  "missing".
- A lease an orchestrator run holds (``run_id``: taken by ``prepare``, renewed by each task while
  it runs, released by ``finalize``) is never stale by itself: a second build is refused naming the
  run until the run releases it or it is removed by hand.
- The lease carries a ``token`` that grows by one at every takeover; every commit checks it
  (``pipelines/core/fence.py``). A holder that fails to renew for ``lease_seconds``, or finds the
  lease taken, refuses its next commit with ``LockedError`` naming the new holder (exit 2).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from regionset.common.conditional import put_if_absent, put_if_version, read_versioned
from regionset.common.liveness import holder_dead, this_process
from regionset.common.storage import RemotePath, as_path
from regionset.pipelines.core.fence import LockedError, arm, describe, disarm, refuse
from regionset.pipelines.core.lock import LOCK_NAME, held_by_run, run_owner

LEASE_SECONDS = 120.0  # a lease whose version did not change for this long is stale
MAX_ROUNDS = 8  # takeover attempts before giving up (each loses only to another writer's success)


class LeaseLock:
    """A lease on an object-store output (``with LeaseLock("s3://bucket/out"): ...``).

    Args:
        out: the output prefix.
        lease_seconds: how long the lease lasts without renewal; renewed every third of it.
        clock: the monotonic clock that judges staleness (tests pass a fake one).
        wall: the wall clock, only for the human-readable times in the lease and in messages.
        run_id: the run holding the lease (an Airflow DAG run), named in refusals.
    """

    def __init__(self, out: RemotePath | str, lease_seconds: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 run_id: str | None = None) -> None:
        self.out = as_path(out)
        self.path = self.out / LOCK_NAME
        self.lease_seconds = float(lease_seconds)
        self.clock, self.wall = clock, wall
        self.info = {"holder": {**this_process(), "started": wall()}, "owner": run_owner(run_id),
                     "token": 0, "lease_seconds": self.lease_seconds, "run_id": run_id}
        self.run_id = run_id
        self.version: str | None = None
        self.lost: str | None = None  # why this holder may no longer commit
        self._beat = 0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _payload(self, released: bool = False) -> bytes:
        self._beat += 1  # every write differs, so its version changes: how contenders see a live holder
        return json.dumps({**self.info, "beat": self._beat, "renewed": self.wall(), "released": released}).encode()

    def _read(self) -> tuple[dict | None, str] | None:
        """``(document, version)`` of the lease (document None when torn), None when absent."""
        try:
            got = read_versioned(self.path)
        except OSError as err:  # a read error is not "missing": never a reason to take the lease
            raise LockedError(f"cannot read {self.path} ({type(err).__name__}: {err}); not taking or "
                              "trusting it") from None
        if got is None:
            return None
        try:
            return json.loads(got[0]), got[1]
        except ValueError:
            return None, got[1]

    # -- taking it --------------------------------------------------------------------------------
    def __enter__(self) -> LeaseLock:
        for _ in range(MAX_ROUNDS):
            self.info["token"] = 1
            created = put_if_absent(self.path, self._payload())
            if created is not None:
                return self._hold(created)
            seen = self._read()
            if seen is None:
                continue  # released and deleted in between: try to create again
            doc, version = seen
            if doc is not None and held_by_run(doc) and not doc.get("released"):
                raise self._locked(doc)  # an orchestrator run's: no process renews it between tasks
            dead = doc is not None and holder_dead(doc.get("holder", {}))
            if doc is not None and not (doc.get("released") or dead):
                version = self._wait_stale(doc, version)
                if version is None:
                    continue  # it changed to released or vanished: look again
                doc = self._read_doc_at(version) or doc
            self.info["token"] = int((doc or {}).get("token", 0)) + 1
            taken = put_if_version(self.path, self._payload(), version)
            if taken is not None:
                return self._hold(taken)
        raise LockedError(f"could not take {self.path}: it kept changing hands")

    def _read_doc_at(self, version: str) -> dict | None:
        seen = self._read()
        return seen[0] if seen is not None and seen[1] == version else None

    def _wait_stale(self, doc: dict, version: str) -> str | None:
        """Watch the lease for the holder's ``lease_seconds`` of this process's monotonic clock: the
        version when it never changed (stale), None when it was released or removed meanwhile; raise
        ``LockedError`` when the holder renewed it (alive) or another build took it."""
        lease = max(0.0, float(doc.get("lease_seconds", LEASE_SECONDS)))
        poll = min(1.0, max(0.05, lease / 20))
        start = self.clock()
        for _ in range(int(lease / poll) + 2):  # bounded: the lease's length in polls, and one more
            if self.clock() - start >= lease:
                return version
            self._stop.wait(poll)
            seen = self._read()
            if seen is None:
                return None
            now, now_version = seen
            if now_version != version:
                if now is not None and now.get("released"):
                    return None
                raise self._locked(now)
        return version if self.clock() - start >= lease else None

    def _locked(self, doc: dict | None) -> LockedError:
        doc = doc or {}
        since = time.ctime(doc.get("holder", {}).get("started", 0))
        held = "held until the run's last task" if doc.get("run_id") else \
            f"lease {doc.get('lease_seconds')} s, renewed while it lives"
        return LockedError(f"{self.out} is being built by {describe(doc)} since {since} ({held}); wait for "
                           f"it, or remove {self.path} if that build is dead")

    def _hold(self, version: str) -> LeaseLock:
        self.version, self.lost = version, None
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="regionset-lease")
        self._renewer.start()
        arm(self.out, self)
        return self

    # -- keeping it -------------------------------------------------------------------------------
    def _renew(self) -> None:
        last_ok = self.clock()
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                new = put_if_version(self.path, self._payload(), self.version)
            except Exception as err:  # noqa: BLE001 - any store error: retried until the lease runs out
                if self.clock() - last_ok >= self.lease_seconds:
                    self.lost = f"could not renew it for {self.lease_seconds:g} s ({type(err).__name__})"
                    return
                continue
            if new is None:
                try:
                    seen = self._read()
                except Exception:  # noqa: BLE001 - the message only
                    seen = None
                self.lost = f"it was taken over by {describe(seen[0] if seen else None)}"
                return
            self.version, last_ok = new, self.clock()
        return

    def check(self) -> None:
        """The commit fence: raise ``LockedError`` unless this build still holds the lease."""
        if self.lost is not None:
            raise LockedError(f"commit refused: {self.out} lease lost ({self.lost}); this build stopped "
                              "before writing")
        seen = self._read()
        refuse(str(self.path), self.info["owner"], self.info["token"], seen[0] if seen else None)

    def fence_args(self) -> tuple[str, str, int]:
        """``(lock, owner, token)`` for a worker's ``Fence``."""
        return str(self.path), self.info["owner"], self.info["token"]

    # -- a lease an orchestrator run holds across its tasks ----------------------------------------
    def adopt(self) -> LeaseLock:
        """In a task of the run: renew the run's lease (compare-and-swap on the version read) and keep
        renewing it while the task runs; ``LockedError`` naming the holder when the run lost it."""
        seen = self._read()
        doc = seen[0] if seen else None
        if not doc or doc.get("owner") != self.info["owner"] or doc.get("released"):
            raise LockedError(f"{self.out} is not held by run {self.run_id} but by {describe(doc)}"
                              + (" (released)" if doc and doc.get("released") else ""))
        self.info = {k: doc[k] for k in self.info if k in doc}
        self.lease_seconds = float(doc.get("lease_seconds", self.lease_seconds))
        self._beat = int(doc.get("beat", 0))
        renewed = put_if_version(self.path, self._payload(), seen[1])
        if renewed is None:
            raise LockedError(f"{self.out}: run {self.run_id} lost its lease while this task started")
        return self._hold(renewed)

    def detach(self) -> None:
        """Stop renewing and leave the lease held (by the run) when this process ends."""
        disarm(self.out, self)
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()

    # -- giving it back ---------------------------------------------------------------------------
    def release(self) -> None:
        """Give the lease back (kept, marked released: the token only grows)."""
        self.__exit__()

    def __exit__(self, *exc: object) -> None:
        self.detach()
        if self.lost is None and self.version is not None:
            try:  # only the version this holder wrote: a newer holder's lease is never touched
                put_if_version(self.path, self._payload(released=True), self.version)
            except Exception:  # noqa: BLE001, S110 - a lease not released runs out by itself
                pass
