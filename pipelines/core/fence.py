"""Fencing: every commit of a build first checks that the build still holds the output's lock.

A lock or lease carries an ``owner`` (random per holder) and a ``token`` (a generation that grows by
one at every takeover of an object-store lease). While a build holds the lock, its process and
every worker it ships the ``Output`` to have a ``Fence`` armed for the output; ``check_commit(path)``
— called by every commit (a shard object, a marker, a global step's completion object, the marker
index, the catalog) — reads the lock object and refuses with ``LockedError`` (exit 2, naming the
holder) when another owner or a newer token holds it, or when it was released. A paused or
partitioned old holder therefore cannot overwrite a newer build's work once the newer build holds
the lease. The check is one small read right before the write, never cached.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from regionset.common.storage import as_path


class LockedError(RuntimeError):
    """Another live build holds the output folder (or took it over from this one)."""


class Checker(Protocol):
    def check(self) -> None: ...

    def fence_args(self) -> tuple[str, str, int]: ...


def describe(doc: dict | None) -> str:
    """The holder a lock document names, in words (``pid N on host H``)."""
    if not doc:
        return "an unknown holder"
    holder = doc.get("holder", doc)
    name = f"pid {holder.get('pid')} on host {holder.get('host')}"
    if doc.get("run_id"):
        name = f"run {doc['run_id']} ({name})"
    return name + (f" (token {doc['token']})" if "token" in doc else "")


@dataclass(frozen=True)
class Fence:
    """What a worker needs to check a commit: the lock object, the holder's owner id and token.

    Args:
        lock: the lock's path or URL.
        owner: the holder's owner id.
        token: the holder's generation.
    """

    lock: str
    owner: str
    token: int

    def check(self) -> None:
        """Raise ``LockedError`` unless the lock object still names this owner and token."""
        try:
            doc = json.loads(as_path(self.lock).read_bytes())
        except FileNotFoundError:
            doc = None
        except ValueError:
            doc = {}
        refuse(self.lock, self.owner, self.token, doc)

    def fence_args(self) -> tuple[str, str, int]:
        """``(lock, owner, token)``: what a worker's ``Fence`` is made of."""
        return self.lock, self.owner, self.token


def refuse(lock: str, owner: str, token: int, doc: dict | None) -> None:
    """Raise ``LockedError`` unless ``doc`` (the lock object now) is held by ``owner`` at ``token``.

    Args:
        lock: the lock's path or URL (for the message).
        owner: the committer's owner id.
        token: the committer's generation.
        doc: the lock object's content (None when missing).
    """
    if doc and doc.get("owner") == owner and int(doc.get("token", 0)) == token and not doc.get("released"):
        return
    now = "released" if doc and doc.get("released") else "missing" if doc is None else f"held by {describe(doc)}"
    raise LockedError(f"commit refused: {lock} is {now}, not by this build (token {token}); "
                      "this build stopped before writing")


_ARMED: dict[str, Checker] = {}  # output root -> the check of the lock this process commits under
_GUARD = threading.Lock()


def _root(out: Any) -> str:
    return str(as_path(out)).rstrip("/")


def arm(out: Any, checker: Checker) -> None:
    """From now on, commits under ``out`` in this process call ``checker.check()`` first.

    Args:
        out: the output root.
        checker: a ``Fence`` or a lock object with ``check()``.
    """
    with _GUARD:
        _ARMED[_root(out)] = checker


def disarm(out: Any, checker: Checker | None = None) -> None:
    """Stop checking commits under ``out`` (only ``checker``'s arming, when given)."""
    with _GUARD:
        if checker is None or _ARMED.get(_root(out)) is checker:
            _ARMED.pop(_root(out), None)


def armed(out: Any) -> Checker | None:
    """The check armed for ``out`` in this process, if any."""
    return _ARMED.get(_root(out))


def check_commit(path: Any) -> None:
    """Refuse a commit to ``path`` (``LockedError``) when it lies under an armed output whose lock this
    process no longer holds; nothing when no lock is armed for it.

    Args:
        path: the object or file about to be written.
    """
    target = str(path) if not isinstance(path, os.PathLike) else os.fspath(path)
    for root, checker in list(_ARMED.items()):
        if target == root or target.startswith(root + "/"):
            checker.check()
