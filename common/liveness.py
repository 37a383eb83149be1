"""Who holds a lock, in terms a PID namespace cannot fake: boot id, PID namespace, pid, start time.

Two containers can share a hostname (``hostNetwork`` pods, ``docker --network host``) and even a pid
number while being different processes. A holder is judged dead only when the reader sees the same
kernel boot (``/proc/sys/kernel/random/boot_id``) and the same PID namespace (``/proc/self/ns/pid``)
and that pid is gone or started at another time (``/proc/PID/stat`` field 22). Anything else (another
host, another namespace, a system without ``/proc``) cannot be judged from here: ``holder_dead``
answers False and the caller falls back on the lease's own expiry.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None.

    Args:
        pid: a process id in this PID namespace.
    """
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else None


def this_process() -> dict:
    """The identity of this process, written into a lock or lease."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
            "pid_ns": _pid_namespace(), "start_time": start_time(pid)}


def holder_dead(holder: dict) -> bool:
    """True only when ``holder``'s process is provably gone: same boot and PID namespace as this
    process, and its pid is gone or was reused by a process that started at another time.

    Args:
        holder: what ``this_process()`` gave the holder.
    """
    me = this_process()
    if not me["boot_id"] or not me["pid_ns"]:
        return False
    if holder.get("boot_id") != me["boot_id"] or holder.get("pid_ns") != me["pid_ns"]:
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    now = start_time(pid)
    return now is None or now != holder.get("start_time")
