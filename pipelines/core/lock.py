"""One writer per output folder: a lock file with pid and host, and stale-lock detection.

On an object store the lock is a lease: an object created with a conditional write (S3
``If-None-Match: *``) holding the holder and an expiry that a thread of the live build renews;
an expired lease is stale and taken over (README "Object storage").
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from regionset.common.storage import RemotePath, as_path, is_remote

LOCK_NAME = "_state/build.lock"
LEASE_SECONDS = 120.0  # an object-store lease not renewed for this long is stale


class LockedError(RuntimeError):
    """Another live build holds the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BuildLock:
    """Exclusive build lock on an output folder (``with BuildLock(out): ...``).

    A lock left by a dead process on this host is stale and taken over; a lock from another host
    is respected (its liveness cannot be checked) unless removed by hand.
    """

    def __new__(cls, out: Path | RemotePath | str, *args: object, **kwargs: object) -> BuildLock:
        if cls is BuildLock and is_remote(out):
            return super().__new__(LeaseLock)
        return super().__new__(cls)

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}

    def __enter__(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder and holder.get("host") == self.info["host"] and not _alive(int(holder.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                if holder is None:  # torn lock file (killed mid-write): stale
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockedError(
                    f"{self.path.parent.parent} is being built by pid {holder.get('pid')} on host "
                    f"{holder.get('host')} since {time.ctime(holder.get('started', 0))}; wait for it, or "
                    f"remove {self.path} if that build is dead") from None
            with os.fdopen(fd, "w") as f:
                json.dump(self.info, f)
            return self
        raise LockedError(f"could not take {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self._holder() == self.info:
            self.path.unlink(missing_ok=True)


class LeaseLock(BuildLock):
    """The object-store lock: a conditionally created lease object, renewed while the build lives.

    Args:
        out: the output prefix (``s3://bucket/prefix``).
        lease_seconds: how long the lease lasts without renewal; renewed every third of it.
    """

    def __init__(self, out: RemotePath | str, lease_seconds: float = LEASE_SECONDS) -> None:
        self.out = as_path(out)
        self.path = self.out / LOCK_NAME
        self.lease_seconds = lease_seconds
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                     "token": os.urandom(8).hex()}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _payload(self) -> bytes:
        return json.dumps({**self.info, "expires": time.time() + self.lease_seconds}).encode()

    def __enter__(self) -> LeaseLock:
        for _ in range(3):
            if self.path.create_exclusive(self._payload()):
                self._renewer = threading.Thread(target=self._renew, daemon=True, name="regionset-lease")
                self._renewer.start()
                return self
            holder = self._holder()
            dead_here = (holder is not None and holder.get("host") == self.info["host"]
                         and not _alive(int(holder.get("pid", -1))))
            if holder is None or dead_here or float(holder.get("expires", 0)) < time.time():
                self.path.unlink(missing_ok=True)  # expired, its process gone from this host, or torn: stale
                continue
            raise LockedError(
                f"{self.out} is being built by pid {holder.get('pid')} on host {holder.get('host')} "
                f"since {time.ctime(holder.get('started', 0))} (lease until "
                f"{time.ctime(holder.get('expires', 0))}); wait for it, or remove {self.path} if that build is dead")
        raise LockedError(f"could not take {self.path}")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                holder = self._holder()
                if holder is None or holder.get("token") != self.info["token"]:
                    return  # gone or taken over (this build stalled past its lease): stop renewing
                self.path.write_bytes(self._payload())
            except OSError:
                continue  # a failed renewal is retried on the next tick; the lease covers two more

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        holder = self._holder()
        if holder is not None and holder.get("token") == self.info["token"]:
            self.path.unlink(missing_ok=True)
