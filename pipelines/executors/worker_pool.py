"""The local executor's worker processes: one spawn pool per build, reused by every stage.

Starting a worker costs an interpreter, the imports (torch, onnxruntime, open_clip) and a model
load; paid once per stage, that start-up grew the CPU-seconds per image with every extra worker.
So ``WorkerPool`` stays alive across stages, and each worker keeps the stages it was sent, set up,
in ``_STAGES`` (keyed by stage name, class, config hash and the pickled config): a stage's models
load once per worker per build. Every task carries that key and the stage pickled once by the
driver (its config only, a few hundred bytes); a worker unpickles it only on a miss. Cached stages
are torn down when the pool shuts down (``close``), or when the same stage comes back with another
config; then the worker ends with ``os._exit`` (``_exit_now``). A pool has one worker count and one
thread share per worker (``common/threads.py``); a stage that needs another share gets a new pool
(``LocalExecutor``). A pool for a GPU stage also has one GPU slot per worker (``gpus.gpu_slots``):
each worker takes the next slot as it starts and pins itself to it (``CUDA_VISIBLE_DEVICES``) before
it imports anything that could start CUDA.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.util import Finalize
from typing import Any

from regionset.common import threads
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask, run_shard
from regionset.pipelines.core.shards import Marker
from regionset.pipelines.executors.base import in_order
from regionset.pipelines.executors.gpus import PIN_ENV
from regionset.stages.base import Stage

_STAGES: dict[str, Stage] = {}  # in a worker: the stages it was sent, set up on first use


def _init_worker(share: int, slots: tuple[str | None, ...] | None = None, taken: Any = None) -> None:
    if slots:  # a GPU pool: the next free slot (workers start one by one, as tasks arrive)
        with taken.get_lock():
            slot, taken.value = slots[taken.value % len(slots)], taken.value + 1
        if slot is not None:
            os.environ[PIN_ENV] = slot
    threads.set_worker_share(share)  # before any stage sizes its pools from it
    Finalize(None, teardown_stages, exitpriority=10)  # runs when the pool shuts the worker down
    Finalize(None, _exit_now, exitpriority=0)  # then, last of the exit finalizers that run first


def _exit_now() -> None:
    """End the worker without the interpreter's finalization: unloading torch, open_clip and
    onnxruntime module by module costs ~2 CPU-s per worker and frees nothing the OS would not. The
    worker has answered its last task (its result queue writes synchronously) and torn its stages
    down; streams are flushed here."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced stream
            pass
    os._exit(0)


def teardown_stages() -> None:
    """Tear down every stage this worker set up (stops e.g. OcrStage's PaddleOCR process)."""
    while _STAGES:
        _, stage = _STAGES.popitem()
        stage.ensure_teardown()


def worker_stage(key: str, payload: bytes) -> Stage:
    """This worker's copy of the stage ``key`` names: cached, or unpickled from ``payload`` (models
    load on its first shard, in ``run_shard``). An older config of the same stage is torn down.

    Args:
        key: the stage key (``stage_key``).
        payload: the pickled stage.
    """
    stage = _STAGES.get(key)
    if stage is None:
        stage = pickle.loads(payload)
        for old in [k for k, s in _STAGES.items() if s.name == stage.name]:
            _STAGES.pop(old).ensure_teardown()
        _STAGES[key] = stage
    return stage


def _work(out: Output, key: str, payload: bytes, task: ShardTask) -> Marker:
    return run_shard(worker_stage(key, payload), out, task)  # ``out`` came over as its URL


def stage_key(stage: Stage, config_hash: str, payload: bytes) -> str:
    """The key of a stage in the workers' cache: name, class, config hash, pickled config."""
    digest = hashlib.sha256(payload).hexdigest()[:16]
    return f"{stage.name}:{type(stage).__qualname__}:{config_hash}:{digest}"


@contextmanager
def _spawn_env(share: int) -> Iterator[None]:
    """Thread-count variables that workers spawned now read before anything imports numpy or torch."""
    names = (threads.SHARE_ENV, *threads.ENV_NAMES)
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: str(share) for k in names})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerPool:
    """``size`` spawned worker processes with ``share`` threads each, kept across stages.

    Args:
        size: worker processes (started as tasks arrive, never more than ``size``).
        share: the thread share of each worker.
        slots: for a GPU stage, the ``CUDA_VISIBLE_DEVICES`` of each worker (``gpus.gpu_slots``;
            None in a slot: every GPU stays visible); None: workers keep this process's GPUs.
    """

    def __init__(self, size: int, share: int, slots: tuple[str | None, ...] | None = None) -> None:
        self.size, self.share, self.slots = size, share, slots
        self.broken = False
        ctx = mp.get_context("spawn")  # torch/onnx threads do not survive fork
        taken = ctx.Value("i", 0) if slots else None
        self._pool = ProcessPoolExecutor(size, mp_context=ctx, initializer=_init_worker,
                                         initargs=(share, slots, taken))

    def fits(self, size: int, share: int, slots: tuple[str | None, ...] | None = None) -> bool:
        """Whether ``size`` workers of ``share`` threads (pinned to ``slots``, when given) can run on
        this pool as it is; a stage without slots runs on any pool, pinned or not."""
        same_slots = slots is None or self.slots == slots
        return not self.broken and self.share == share and self.size >= size and same_slots

    def run(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        """Run ``tasks`` of ``stage`` on the workers; yield markers as shards finish. Tasks not yet
        started are cancelled if the caller stops early or a shard fails.

        Args:
            stage: the stage (pickled once here; workers keep their set-up copy).
            out: the output folder.
            tasks: the shards to do (all carry the stage's config hash).
        """
        payload = pickle.dumps(stage)
        key = stage_key(stage, tasks[0].config_hash, payload)
        with _spawn_env(self.share):  # workers start on submit, inheriting these
            futures = [self._pool.submit(_work, Output.of(out), key, payload, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BrokenProcessPool:
            self.broken = True  # a worker died: the next stage gets a new pool
            raise
        finally:
            for fut in futures:
                fut.cancel()

    def call(self, fn: Callable[..., Any], jobs: list[tuple], window: int) -> Iterator[Any]:
        """``fn(*job)`` for every job on the workers, yielded in job order (e.g. k-means fits), with at
        most ``window`` calls submitted and not yet yielded: a result waits in this process only until
        the ones before it are done. Calls not yet started are cancelled if the caller stops early.

        Args:
            fn: a module-level function (workers import it by name).
            jobs: one argument tuple per call.
            window: calls in flight at most (at least 1).
        """
        def submit(job: tuple) -> Future:
            with _spawn_env(self.share):  # workers start on submit, inheriting these
                return self._pool.submit(fn, *job)

        try:
            yield from in_order(jobs, window, submit, Future.result, Future.cancel)
        except BrokenProcessPool:
            self.broken = True
            raise

    def close(self) -> None:
        """Stop the workers (each tears its stages down first) and wait for them."""
        self._pool.shutdown(wait=True, cancel_futures=True)
