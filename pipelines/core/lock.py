"""One writer per output folder: a lock file naming its holder, and stale-lock detection.

A local folder's lock is a file created exclusively (``O_EXCL``); a lock whose process is provably
gone (same boot and PID namespace, pid gone or reused: ``common/liveness.py``) is stale and taken
over. On an object store the lock is a lease (``pipelines/core/lease.py``). Either way, while held it
arms the commit fence (``pipelines/core/fence.py``) for the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from regionset.common.liveness import holder_dead, this_process
from regionset.common.storage import is_remote
from regionset.pipelines.core.fence import LockedError, arm, describe, disarm, refuse

__all__ = ["LOCK_NAME", "BuildLock", "LockedError", "run_owner"]

LOCK_NAME = "_state/build.lock"


def run_owner(run_id: str | None) -> str:
    """The owner id of a lock: derived from an orchestrator run's id (every task of the run finds the
    same), else random for this process.

    Args:
        run_id: an orchestrator run's id (an Airflow DAG run), or None.
    """
    return "run-" + hashlib.sha256(run_id.encode()).hexdigest()[:16] if run_id else os.urandom(8).hex()


def held_by_run(doc: dict) -> bool:
    """A lock an orchestrator run holds outlives the process that took it: its pid says nothing."""
    return bool(doc.get("run_id"))


class BuildLock:
    """Exclusive build lock on a local output folder (``with BuildLock(out): ...``).

    A lock left by a process that is provably gone is stale and taken over; any other lock (another
    host, another PID namespace, an old lock without a boot id) is respected unless removed by hand.

    Args:
        out: the output folder.
        run_id: the orchestrator run that holds it across tasks (``adopt``/``detach``/``release``).
    """

    def __init__(self, out: Path, run_id: str | None = None) -> None:
        if is_remote(out):
            raise TypeError(f"{out} is an object-store output: its lock is a LeaseLock (Output.lock())")
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.info = {**this_process(), "started": time.time(), "owner": run_owner(run_id), "token": 1,
                     "run_id": run_id}
        self.run_id = run_id

    def __enter__(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None or (not held_by_run(holder) and holder_dead(holder)):  # torn, or process gone
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockedError(
                    f"{self.out} is being built by {describe(holder)} since "
                    f"{time.ctime(holder.get('started', 0))}; wait for it, or remove {self.path} if that "
                    "build is dead") from None
            with os.fdopen(fd, "w") as f:
                json.dump(self.info, f)
            arm(self.out, self)
            return self
        raise LockedError(f"could not take {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def check(self) -> None:
        """Raise ``LockedError`` unless this lock is still this build's (the commit fence)."""
        refuse(str(self.path), self.info["owner"], self.info["token"], self._holder())

    def fence_args(self) -> tuple[str, str, int]:
        """``(lock, owner, token)`` for a worker's ``Fence``."""
        return str(self.path), self.info["owner"], self.info["token"]

    # -- a lock an orchestrator run holds across its tasks ----------------------------------------
    def adopt(self) -> BuildLock:
        """In a task of the run: check the run still holds the lock and arm the fence (``LockedError``
        naming the holder otherwise)."""
        holder = self._holder()
        if not holder or holder.get("owner") != self.info["owner"]:
            raise LockedError(f"{self.out} is not held by run {self.run_id} but by {describe(holder)}")
        self.info = holder
        arm(self.out, self)
        return self

    def detach(self) -> None:
        """Leave the lock held (by the run) when this process ends."""
        disarm(self.out, self)

    def release(self) -> None:
        """Give the lock back (the run's last task, or the end of a build)."""
        disarm(self.out, self)
        if self._holder() == self.info:
            self.path.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.release()
