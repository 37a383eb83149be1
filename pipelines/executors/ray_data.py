"""The ``ray`` executor: Ray Data ``map_batches`` over shard tasks with a pool of stage actors.

Each stage becomes one Ray Data job: a dataset of shard tasks (one block, one batch per shard) ->
``map_batches(StageActor, batch_format="pyarrow", batch_size=1, compute=ActorPoolStrategy(...))``.
The actor's constructor runs the stage's ``setup()`` (models load once per actor); ``__call__`` runs
the shard exactly as ``local`` does and writes the output and the marker (atomic, marker last) to
the shared output folder. Markers travel back as result rows for the report.

Sizing: an actor gets the stage's ``resources().gpus`` and at most ``resources().cpus`` CPUs, but
never so many that the pool holds every CPU of the cluster — with 2 actors × 1 CPU on 2 CPUs Ray
Data cannot schedule its own tasks and the job deadlocks, so ``reserve_cpus`` stay free. The
actor's thread pools get its ``num_cpus`` rounded up (at least 1) as their share (``common/threads.py``).

``run_calls`` (e.g. the per-parent k-means fits) runs each call as a Ray task of ``CALL_CPUS`` CPU;
a large array argument shared by several calls goes into the object store once.

Lost nodes: stage actors are never restarted (``max_restarts=0``; Ray Data's default restarts them
forever, and a pool sized for the old cluster then waits on an actor that cannot be placed). When a
node dies mid-stage, the stage's job fails; if a node was lost, the shards without a marker run
again in a fresh pool sized for the nodes left, at most ``STAGE_ROUNDS`` times. ``executor.stall_timeout``
bounds everything else (``pipelines/executors/stall.py``). docs/cluster.md "Faults".
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from regionset.common import threads
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask
from regionset.pipelines.core.shards import Marker
from regionset.pipelines.executors.base import Executor, in_order
from regionset.pipelines.executors.config import RayConfig
from regionset.pipelines.executors.distributed import (
    cached_stage,
    call_in_worker,
    markers_of,
    run_task_batch,
    task_table,
    worker_env,
)
from regionset.stages.base import Resources, Stage

_PIP_HINT = "the ray executor needs Ray Data: pip install 'regionset[ray]' (ray[data])"
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2  # only small task/result rows travel through it
CALL_CPUS = 1.0
SHARED_ARG_BYTES = 1 << 20  # an argument at least this large is put in the object store once
STAGE_ROUNDS = 3  # a stage that lost a node is run again over its unfinished shards at most this often in all
NODE_DEATH_WAIT = 60.0  # seconds to wait for Ray to declare dead the node of an actor that stopped answering


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(_PIP_HINT) from e
    return ray


class StageActor:
    """A Ray Data actor holding one set-up stage; called with batches of shard tasks.

    Args:
        stage: the stage (travels as its config; ``setup()`` runs here, once per actor).
        out: the output folder, as seen by the actor's node.
        cpus: the actor's ``num_cpus``: its share of cores, which sizes the stage's thread pools.
    """

    def __init__(self, stage: Stage, out: Output, cpus: float = 1.0) -> None:
        threads.set_worker_share(cpus)
        self.stage = cached_stage(stage)
        self.out = out  # rebuilt from its URL on the actor's node

    def __call__(self, batch):
        return run_task_batch(self.stage, self.out, batch)


def reserved(stage: Stage, cluster: dict[str, float]) -> Resources:
    """The stage's resource hint, plus one GPU per actor when its ``device`` is ``auto`` and the cluster
    has GPUs: a worker uses a GPU only when Ray gave it one (``models/registry.executor_gpus``), so a
    stage that would use one must reserve it. A share (``resources.gpus`` = 1/N: N actors per GPU)
    is kept as it is; on a cluster without GPUs an ``auto`` stage reserves none (it runs on the CPU).

    Args:
        stage: the stage.
        cluster: ``ray.cluster_resources()``.
    """
    r = stage.resources()
    if stage.device() == "auto":
        has_gpu = cluster.get("GPU", 0.0) >= 1
        return Resources(cpus=r.cpus, gpus=(r.gpus or 1.0) if has_gpu else 0.0)
    return r


def pool_shape(resources, cluster: dict[str, float], n_tasks: int, cfg: RayConfig) -> tuple[int, float, float]:
    """Actor-pool size and per-actor CPUs/GPUs for a stage on a cluster.

    Args:
        resources: the stage's ``Resources`` hint.
        cluster: ``ray.cluster_resources()`` (``CPU``, ``GPU`` totals).
        n_tasks: shards to run (the pool is never larger).
        cfg: the executor settings (``actors``, ``reserve_cpus``, ``gpus_per_actor``).
    """
    cpus_total = float(cluster.get("CPU", 1.0))
    gpus_total = float(cluster.get("GPU", 0.0))
    gpus = resources.gpus if cfg.gpus_per_actor < 0 else cfg.gpus_per_actor
    if gpus > 0 and gpus_total < gpus:
        raise RuntimeError(
            f"the stage asks for {gpus} GPU per actor but the Ray cluster has {gpus_total:g}; run on a GPU "
            "cluster or set executor.ray.gpus_per_actor=0 (and the stage's device to cpu)"
        )
    want = max(resources.cpus, 0.01) if resources.cpus > 0 else 1.0  # 0: one CPU per actor
    if cfg.actors > 0:
        size = cfg.actors
    elif gpus > 0:  # N actors per GPU for a share 1/N (rounded: 1 // (1/3) may fall short of 3)
        size = int(gpus_total * round(1 / gpus)) if gpus < 1 else int(gpus_total // gpus)
    else:
        size = int(cpus_total // want)
    size = max(1, min(size, n_tasks))
    usable = max(cpus_total - max(cfg.reserve_cpus, 0.0), 0.01)
    cpus = round(min(want, usable / size), 3)  # fractional: the pool never holds every CPU
    return size, cpus, gpus


class RayExecutor(Executor):
    """Run stages with Ray Data, locally (``ray.init(address="local")``) or on the cluster at ``config.address``.

    Args:
        config: the ``executor.ray`` settings.
        show_progress: draw a progress bar per stage.
    """

    name = "ray"

    def __init__(self, config: RayConfig | None = None, show_progress: bool = True,
                 stall_timeout: float = 0.0) -> None:
        super().__init__(show_progress, stall_timeout)
        self.config = config or RayConfig()
        self._started_ray = False
        self._dead_at_start: set[str] = set()

    def _ensure_ray(self):
        ray = _ray()
        if not ray.is_initialized():
            kwargs = {"runtime_env": {"env_vars": worker_env()}, "logging_level": logging.WARNING,
                      "include_dashboard": False, "log_to_driver": True}
            if self.config.address:
                ray.init(address=self.config.address, **kwargs)
            else:  # "local": never a cluster found via ray_current_cluster or RAY_ADDRESS
                ray.init(address="local", num_cpus=self.config.num_cpus or None, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                         **kwargs)
            self._started_ray = True
            self._dead_at_start = {n["NodeID"] for n in ray.nodes() if not n["Alive"]}
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False  # regionset draws its own per-stage bar
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def lost_nodes(self) -> str:
        """Nodes that died since this executor joined the cluster (``ip (node id)``), comma-separated."""
        if not self._started_ray:
            return ""
        try:
            dead = [n for n in _ray().nodes() if not n["Alive"] and n["NodeID"] not in self._dead_at_start]
        except Exception as e:  # noqa: BLE001 - the message must not fail because the GCS is gone too
            return f"unknown (the Ray cluster does not answer: {type(e).__name__})"
        return ", ".join(f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})" for n in dead)

    def run_tasks(self, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        ray = self._ensure_ray()
        todo = {t.shard: t for t in tasks}
        for attempt in range(1, STAGE_ROUNDS + 1):
            try:
                for marker in self._run_pool(ray, stage, out, list(todo.values())):
                    todo.pop(marker.shard, None)
                    yield marker
                return
            except ray.exceptions.RayError as err:
                if not todo or attempt == STAGE_ROUNDS:
                    raise
                lost = self._wait_lost(isinstance(err, ray.exceptions.RayActorError))
                if not lost:
                    raise
                print(f"regionset: ray: {stage.name}: lost {lost}; running its {len(todo)} unfinished shard(s) "
                      f"again on the nodes left (round {attempt + 1} of {STAGE_ROUNDS})", file=sys.stderr, flush=True)

    def _wait_lost(self, actor_error: bool) -> str:
        """The lost nodes; after an actor error, waits (bounded) for Ray to declare its node dead:
        the actor's connection drops at once, its node is marked dead only after missed heartbeats."""
        deadline = time.monotonic() + (NODE_DEATH_WAIT if actor_error else 0.0)
        while not (lost := self.lost_nodes()) and time.monotonic() < deadline:
            time.sleep(1.0)
        return lost

    def _run_pool(self, ray, stage: Stage, out: Output, tasks: list[ShardTask]) -> Iterator[Marker]:
        cluster = ray.cluster_resources()
        size, cpus, gpus = pool_shape(reserved(stage, cluster), cluster, len(tasks), self.config)
        ds = ray.data.from_arrow(task_table(tasks)).repartition(len(tasks))  # one block per shard
        ds = ds.map_batches(
            StageActor, fn_constructor_kwargs={"stage": stage, "out": Output.of(out), "cpus": cpus},
            batch_format="pyarrow", batch_size=1, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size),
            # a dead actor fails the job (see run_tasks); Ray 2.60 takes it only as a remote arg, which it
            # warns will go in Ray 2.64 (RayDeprecationWarning): revisit when the pin moves past it
            num_cpus=cpus, num_gpus=gpus or None, max_restarts=0,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield from markers_of(batch)

    def iter_calls(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        """``fn(*job)`` per job as Ray tasks of ``CALL_CPUS`` CPU each, yielded in job order, with at
        most twice as many tasks submitted and not yet yielded as the cluster has CPUs for.

        Args:
            fn: a module-level function (workers import it by name).
            jobs: one argument tuple per call.
        """
        if not jobs:
            return
        ray = self._ensure_ray()
        task = ray.remote(num_cpus=CALL_CPUS)(call_in_worker)
        shared: dict[int, Any] = {}

        def ref(arg: Any) -> Any:
            if getattr(arg, "nbytes", 0) >= SHARED_ARG_BYTES:
                return shared.setdefault(id(arg), ray.put(arg))
            return arg

        window = max(2, int(2 * ray.cluster_resources().get("CPU", 1) / CALL_CPUS))
        calls = in_order(jobs, window, lambda job: task.remote(CALL_CPUS, fn, *map(ref, job)), ray.get)
        yield from self.guard(calls, "call")

    def on_every_node(self, fn: Callable[..., Any], args: tuple, timeout: float) -> tuple[str, list[Any]]:
        """One Ray task pinned to each alive node that has CPUs (a head started with ``--num-cpus=0``
        runs none), given the head's address (from the GCS address)."""
        ray = self._ensure_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        toward = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
        task = ray.remote(call_in_worker)
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        refs = [task.options(num_cpus=CALL_CPUS, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(CALL_CPUS, fn, toward, *args) for n in nodes]
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if pending:
            late = [n["NodeManagerAddress"] for n, r in zip(nodes, refs) if r in pending]
            for r in pending:
                ray.cancel(r, force=True)
            raise TimeoutError(f"no answer from Ray node(s) {', '.join(late)} within {timeout:g} s")
        return toward, ray.get(refs)

    def close(self) -> None:
        """Shut Ray down if this executor started it (not after a stall: a thread of this process is
        still blocked inside Ray, and shutting Ray down under it ends the process before the build
        can say why; the process is about to exit, which disconnects it)."""
        if self._started_ray and not self.stalled:
            _ray().shutdown()
            self._started_ray = False
