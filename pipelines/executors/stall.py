"""``executor.stall_timeout``: a distributed stage that goes too long without a shard finishing
stops the build (exit 1, one line naming the lost nodes) instead of waiting forever on an engine
that keeps retrying against a dead node (docs/cluster.md "Faults").

``guarded(results, seconds, lost)`` drains ``results`` (an engine's blocking iterator) in a daemon
thread and hands each item over through a queue; when none arrives for ``seconds``, it raises
``StallError``. The engine's thread is left blocked: the caller is expected to end the build.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class StallError(RuntimeError):
    """No shard finished (or call returned) for ``executor.stall_timeout`` seconds."""


def guarded(results: Iterator[T], seconds: float, lost: Callable[[], str], what: str = "shard") -> Iterator[T]:
    """``results`` item by item, raising ``StallError`` when none comes for ``seconds`` (0: no limit).

    Args:
        results: a blocking iterator (markers or call results of one stage).
        seconds: the stall timeout.
        lost: describes the engine's lost nodes (called once, on a stall).
        what: what an item is, for the message (``shard``, ``call``).
    """
    if seconds <= 0:
        yield from results
        return
    box: queue.Queue = queue.Queue(maxsize=1)  # the engine thread waits until the caller took the item
    stop = threading.Event()

    def drain() -> None:
        try:
            for item in results:
                while not stop.is_set():
                    try:
                        box.put((True, item), timeout=1.0)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put((True, _DONE))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box.put((False, err))

    threading.Thread(target=drain, name="stall-guard", daemon=True).start()
    try:
        while True:
            try:
                ok, item = box.get(timeout=seconds)
            except queue.Empty:
                raise StallError(f"executor.stall_timeout: no {what} finished for {seconds:g} s; "
                                 f"lost: {lost() or 'no node reported lost'}") from None
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
