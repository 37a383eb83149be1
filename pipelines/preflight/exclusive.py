"""Preflight: can the output's store do what the single-writer lease needs? Tried, not assumed.

Two threads race to create one probe object under ``_state/`` with ``If-None-Match: *``
(``common/conditional.py``): exactly one must win. A store that lets both win (fsspec's default
exists-then-write, a gateway that drops the header) or that has no compare-and-swap reachable here
stops the build with exit 2 and one line, unless the config says ``output_lock: none`` (a loud
warning: no lock at all).
"""

from __future__ import annotations

import os
import threading

from regionset.common.conditional import put_if_absent, supports_compare_and_swap
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import STATE_DIR
from regionset.pipelines.preflight.checks import Check, fail, ok, warn

NAME = "output lock"
RACE_SECONDS = 30.0  # each racing create is one PUT: bounded by the client's own timeouts, then this


def racing_creates(path: object, contenders: int = 2) -> int:
    """How many of ``contenders`` threads, released together, created ``path`` (1 on a sound store).

    Args:
        path: a ``RemotePath`` that does not exist yet.
        contenders: how many racing creates.
    """
    start = threading.Barrier(contenders)
    won: list[bool] = []
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            start.wait(timeout=RACE_SECONDS)
            won.append(put_if_absent(path, f"probe {i}".encode()) is not None)
        except BaseException as err:  # noqa: BLE001 - reported by the caller
            errors.append(err)

    threads = [threading.Thread(target=create, args=(i,), daemon=True) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RACE_SECONDS)
    if errors:
        raise errors[0]
    return sum(won)


def check_exclusive_create(cfg: BuildConfig) -> Check:
    """The exclusive-create probe of an object-store output (see the module docstring).

    Args:
        cfg: the resolved build config (``output`` is a URL).
    """
    out = Output(cfg.output)
    if cfg.output_lock == "none":
        return warn(NAME, "output_lock", f"output_lock: none: {out} is built WITHOUT a lock; two builds at "
                    "once can corrupt it")
    hint = "; set output_lock: none to build without a lock (unsafe with two builds)"
    if not supports_compare_and_swap(out.root):
        return fail(NAME, "output_lock", f"output={cfg.output}: {out.root.protocol}:// has no conditional "
                    f"write (compare-and-swap) reachable here{hint}")
    probe = out / STATE_DIR / f".probe-create-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        winners = racing_creates(probe)
    except Exception as err:  # the client's errors vary by backend: one line, not a trace
        return fail(NAME, "output_lock", f"output={cfg.output}: the exclusive-create probe failed "
                    f"({type(err).__name__}: {' '.join(str(err).split())[:160]})")
    finally:
        probe.unlink(missing_ok=True)
    if winners != 1:
        return fail(NAME, "output_lock", f"output={cfg.output}: exclusive create is not atomic on this store "
                    f"({winners} of 2 racing creates won){hint}")
    return ok(NAME, "output_lock", f"{out}: exclusive create probed (1 of 2 racing creates won)")
