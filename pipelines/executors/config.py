"""The executors' config types: the ``executor`` section of the build config (docs/cluster.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from regionset.common.typed_config import ConfigError


@dataclass(frozen=True)
class RayConfig:
    """The ``ray`` executor (Ray Data; extra ``ray``). See docs/cluster.md.

    Args:
        address: an existing cluster (``auto`` = the one ``ray start`` or ``RAY_ADDRESS`` names,
            ``host:6379``, ``ray://host:10001``); empty starts a fresh local Ray for this build,
            whatever ``ray start`` left on the machine or ``RAY_ADDRESS`` says.
        num_cpus: CPUs of a local Ray (0 = all of this machine); ignored with ``address``.
        actors: actor-pool size per stage (0 = as many as the CPUs or GPUs allow, capped by shards).
        reserve_cpus: CPUs left free for Ray Data's own tasks; actors get fractional CPUs so that
            a pool never holds every CPU (a full pool deadlocks the reads).
        gpus_per_actor: override of the stage's GPU hint (-1 = use the stage's ``resources.gpus``).
    """

    address: str = ""
    num_cpus: int = 0
    actors: int = 0
    reserve_cpus: float = 0.5
    gpus_per_actor: float = -1.0


@dataclass(frozen=True)
class SparkConfig:
    """The ``spark`` executor (PySpark ``mapInArrow``; extra ``spark``). See docs/cluster.md.

    Args:
        master: ``local[*]`` (default), ``local[N]``, or a cluster URL (``spark://host:7077``, ``yarn``).
        python: interpreter of the Python workers (empty = this interpreter on ``local[...]``, Spark's own
            choice on a cluster: ``PYSPARK_PYTHON`` or ``spark.pyspark.python``, else ``python3``).
        conf: extra Spark settings, e.g. ``{"spark.executor.memory": "8g"}``.
    """

    master: str = "local[*]"
    python: str = ""
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutorConfig:
    """Which backend runs the per-shard stages.

    Args:
        name: ``local`` (in-process, the default), ``ray`` (Ray Data) or ``spark`` (PySpark).
        processes: worker processes for ``local`` (1 = in-process); ``auto`` = as many as each stage's
            ``resources.cpus`` fits on this machine (one per core when it is 0). Each worker's thread
            pools get cores ÷ workers threads (docs/cluster.md "Threads per worker").
        ray: settings of the ``ray`` executor.
        spark: settings of the ``spark`` executor.
        connect_timeout: seconds the preflight waits for a Ray or Spark address to answer.
        stall_timeout: seconds a ``ray`` or ``spark`` stage may go without a shard finishing (or a
            call returning) before the build stops with exit 1 naming the lost nodes (0 = no limit).
            Larger than the slowest shard plus model loading (docs/cluster.md "Faults").
    """

    name: Literal["local", "ray", "spark"] = "local"
    processes: int | Literal["auto"] = 1
    ray: RayConfig = field(default_factory=RayConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    connect_timeout: float = 20.0
    stall_timeout: float = 3600.0
    # how long to wait on a stuck engine, not what a build makes: left out of the config hash
    NOT_HASHED: ClassVar[tuple[str, ...]] = ("stall_timeout",)

    def check(self) -> None:
        """Raise ConfigError naming the key for a setting that cannot work."""
        if self.processes != "auto" and self.processes < 1:
            raise ConfigError("executor.processes: must be >= 1 or auto")
        if self.stall_timeout < 0:
            raise ConfigError("executor.stall_timeout: must be >= 0 seconds (0 = no limit)")
