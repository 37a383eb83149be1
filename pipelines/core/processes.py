"""The driver's process tree and its resident memory, from ``/proc`` (Linux): for the metrics endpoint
(``core/metrics.py``). Elsewhere, or for a process gone meanwhile, the figures are simply absent."""

from __future__ import annotations

import os
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(k) for k in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return kids


def process_tree(root: int | None = None, limit: int = 512) -> dict[int, str]:
    """The driver (``root``, default this process) and every process under it (workers), pid ->
    ``driver`` / ``worker-<pid>``; at most ``limit`` processes."""
    root = os.getpid() if root is None else root
    got: dict[int, str] = {}
    todo = [root]
    while todo and len(got) < limit:
        pid = todo.pop()
        if pid in got:
            continue
        got[pid] = "driver" if pid == root else f"worker-{pid}"
        todo += _children(pid)
    return got


def process_memory(root: int | None = None, limit: int = 512) -> dict[str, int]:
    """Resident bytes of the driver (``root``, default this process) and of every process under it
    (workers), keyed ``driver`` / ``worker-<pid>``; at most ``limit`` processes."""
    return {name: rss for pid, name in process_tree(root, limit).items() if (rss := _rss(pid)) is not None}
