"""One writer per output folder: a lock file with pid and host, and stale-lock detection."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = "_state/build.lock"


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
