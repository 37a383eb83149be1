"""The thread budget of a worker: how many threads every pool in this process may run (docs/cluster.md).

A worker's *share* is the cores its executor gave it, derived once: ``local`` = the machine's cores
÷ worker processes, ``ray`` = the actor's ``num_cpus`` (rounded up, at least 1), ``spark`` =
``spark.task.cpus``; a process no executor told (the driver, a notebook) owns the whole machine.
A stage's budget is its ``resources.cpus`` (rounded up) capped by the share, or the whole share
when ``resources.cpus`` is 0. ``apply`` sets that budget on every pool a stage can use: torch intra-
and inter-op threads, OpenCV, FAISS, the BLAS/OpenMP runtimes already loaded (threadpoolctl) and the
``OMP/MKL/OpenBLAS`` variables read by libraries loaded later and by processes spawned later.
Models read ``current()`` for what has no process-wide switch (onnxruntime session options, the
stages' own decode and preprocessing threads).
"""

from __future__ import annotations

import math
import os
import sys

SHARE_ENV = "REGIONSET_WORKER_CPUS"  # the share, inherited by processes a worker spawns
ENV_NAMES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_share: int | None = None
_applied: int | None = None
_interop: int | None = None  # torch's inter-op pool can be sized once per process


def machine_cpus() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def set_worker_share(cpus: float) -> int:
    """Record the cores an executor gave this worker process (rounded up, at least 1); returns it.

    Args:
        cpus: the worker's cores (may be fractional, e.g. a Ray actor's ``num_cpus`` of 0.75).
    """
    global _share
    _share = max(1, math.ceil(cpus - 1e-9))
    os.environ[SHARE_ENV] = str(_share)
    return _share


def worker_share() -> int:
    """The cores of this worker: what ``set_worker_share`` recorded, inherited, or the whole machine."""
    if _share is not None:
        return _share
    env = os.environ.get(SHARE_ENV, "")
    return max(1, int(env)) if env.isdigit() else machine_cpus()


def stage_threads(cpus: float) -> int:
    """The thread budget of a stage in this worker.

    Args:
        cpus: the stage's ``resources.cpus``; 0 (or less) = the worker's whole share.
    """
    share = worker_share()
    if cpus <= 0:
        return share
    return max(1, min(math.ceil(cpus - 1e-9), share))


def current() -> int:
    """The budget last applied in this process (the worker's share when none was)."""
    return _applied if _applied is not None else worker_share()


def apply(threads: int) -> int:
    """Size every thread pool of this process to ``threads``; safe to call again (e.g. after models
    loaded torch or faiss). Returns ``threads``.

    Args:
        threads: the budget (at least 1).
    """
    global _applied, _interop
    threads = max(1, int(threads))
    _applied = threads
    for name in ENV_NAMES:  # libraries loaded later and processes spawned later read these
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)  # BLAS and OpenMP runtimes already loaded (numpy, torch, faiss)
    except ImportError:  # pragma: no cover - a core dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        if _interop is None:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError:  # parallel work already started here: the pool keeps its size
                pass
            _interop = threads
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(threads)
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
    return threads


def snapshot() -> dict[str, int | None]:
    """The thread counts this process ended up with, per pool (what tests and benches read)."""
    torch, cv2, faiss = (sys.modules.get(m) for m in ("torch", "cv2", "faiss"))
    return {
        "budget": current(),
        "torch": torch.get_num_threads() if torch else None,
        "torch_interop": torch.get_num_interop_threads() if torch else None,
        "cv2": cv2.getNumThreads() if cv2 else None,
        "faiss": faiss.omp_get_max_threads() if faiss else None,
        "omp_env": int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None,
    }
