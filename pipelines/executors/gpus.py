"""Several workers per GPU: which GPU each worker of a stage gets, for every executor.

A stage's ``resources.gpus`` is the share of a GPU one worker takes: 1 (the default for a stage that
names CUDA), 1/N for N workers on one GPU (0.5, 0.25, ...), or a whole number of GPUs per worker.
- ``local``: a stage that uses a GPU runs ``visible GPUs × N`` worker processes (never more than the
  shards to do), whatever ``executor.processes`` says; each worker is pinned to its GPU through
  ``CUDA_VISIBLE_DEVICES`` before anything in it starts CUDA, so ``cuda`` in the worker is its GPU.
  Workers go round-robin over the GPUs, so fewer shards than slots still spread over every GPU. A
  device that names an index (``cuda:1``) keeps every GPU visible: its N workers share that one.
- ``ray``: the actor's ``num_gpus`` is the share itself; Ray packs N actors on a GPU and sets
  ``CUDA_VISIBLE_DEVICES`` for each (``pipelines/executors/ray_data.py``).
- ``spark``: on a cluster whose executors have GPU resources, the stage's job asks for the share as
  its task GPU amount (a task resource profile); a Python worker pins itself to the GPU address of
  its first task (``pin_task_gpus``).
docs/cluster.md "Several workers per GPU".
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

from regionset.stages.base import Stage

CPU_DEVICES = ("cpu", "")  # a stage with one of these uses no GPU ("" = a model-free stage)
INDEXED = re.compile(r"^(cuda|tensorrt):(\d+)$")
PIN_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """This process's GPUs as ``CUDA_VISIBLE_DEVICES`` entries: the entries it already names (ids or
    UUIDs), else ``0..count-1``; empty without torch's CUDA. Counting does not start CUDA (NVML)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return []
    count = torch.cuda.device_count()
    named = os.environ.get(PIN_ENV)
    if named is not None:
        return [e.strip() for e in named.split(",") if e.strip()][:count]
    return [str(i) for i in range(count)]


def may_use_gpu(stage: Stage) -> bool:
    """Whether ``stage`` could use a GPU here (so the executor must look for one): a device other
    than ``cpu`` (``Stage.device_here``: OCR's ``auto`` without onnxruntime's CUDA provider is
    ``cpu``), or a GPU hint on a model-free stage."""
    return stage.device_here() not in CPU_DEVICES or (stage.device_here() == "" and stage.resources().gpus > 0)


def worker_gpus(stage: Stage) -> float:
    """The GPUs one worker of ``stage`` takes where GPUs exist: its ``resources.gpus``, else 1 for a
    device other than ``cpu`` (``auto``, ``cuda[:N]``, ``tensorrt[:N]``); 0 on the CPU."""
    device, gpus = stage.device(), stage.resources().gpus
    if device == "cpu":
        return 0.0
    return gpus or (1.0 if device else 0.0)


def stage_gpus(stage: Stage, visible: int) -> float:
    """The GPUs one worker of ``stage`` takes on a machine with ``visible`` GPUs: its
    ``resources.gpus`` (1 for a device naming CUDA), or 1 for ``auto`` where a GPU is visible; 0 for
    a stage on the CPU here (``Stage.device_here``; ``auto`` and a GPU hint without a GPU included).

    Args:
        stage: the stage.
        visible: GPUs this machine shows (``len(visible_gpus())``).

    Raises:
        RuntimeError: the stage names a GPU device, or more GPUs per worker than there are (one line).
    """
    device, gpus = stage.device_here(), worker_gpus(stage)
    if device == "cpu" or (device in ("", "auto") and visible == 0):
        return 0.0
    if gpus > visible + 1e-9:
        raise RuntimeError(f"{stage.name}: asks for {gpus:g} GPU per worker (device={device or 'none'}, "
                           f"{stage.name}.resources.gpus) but this machine shows {visible}; set "
                           f"{stage.name}.device=cpu or run where a GPU is visible")
    return gpus


def gpu_slots(gpus: float, devices: Sequence[str], device: str = "cuda") -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each worker slot (None: leave every GPU visible).

    Args:
        gpus: GPUs per worker (``stage_gpus``): 1/N puts N workers on each GPU, k >= 1 gives each
            worker k GPUs.
        devices: the visible GPUs (``visible_gpus``).
        device: the stage's device; one naming an index (``cuda:1``) gets N slots on that GPU, unpinned.
    """
    if gpus <= 0 or not devices:
        return []
    per_gpu = max(1, round(1 / gpus)) if gpus < 1 else 1
    if INDEXED.match(device):
        return [None] * per_gpu
    if gpus < 1:
        return [devices[i % len(devices)] for i in range(len(devices) * per_gpu)]
    k = round(gpus)
    return [",".join(devices[j * k:(j + 1) * k]) for j in range(len(devices) // k)]


def describe(stage_name: str, gpus: float, slots: Sequence[str | None]) -> str:
    """One line: how the workers of a stage sit on the GPUs (preflight, the bench)."""
    if not slots:
        return f"{stage_name}: on the CPU"
    gpu_count = len({s for s in slots if s is not None}) or 1
    return f"{stage_name}: {len(slots)} worker(s) on {gpu_count} GPU slot(s), {gpus:g} GPU each"


def spark_task_gpu_amount(gpus: float, master: str, conf: dict[str, str]) -> float | None:
    """The GPU amount a Spark stage job asks per task, or None to leave Spark's own settings: only
    on a cluster master whose executors are given GPUs (``spark.executor.resource.gpu.amount`` in
    ``executor.spark.conf``; asking for GPUs no executor has would leave the tasks unscheduled), and
    only for a stage that uses one.

    Args:
        gpus: the stage's GPUs per worker (``stage_gpus``).
        master: ``executor.spark.master``.
        conf: ``executor.spark.conf``.
    """
    if gpus <= 0 or master.startswith("local") or float(conf.get("spark.executor.resource.gpu.amount", 0) or 0) <= 0:
        return None
    return gpus


_PINNED: list[str] = []  # the GPUs this process pinned itself to (Spark Python workers)


def pin_task_gpus(addresses: Sequence[str]) -> str | None:
    """Pin this process to the GPU ``addresses`` a Spark task was given, once, before CUDA starts
    (later tasks of a reused Python worker keep the first pin). Returns what the process is pinned to.

    Args:
        addresses: the task's ``gpu`` resource addresses.
    """
    if _PINNED or not addresses:
        return _PINNED[0] if _PINNED else None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return None  # too late: CUDA already chose its devices in this process
    _PINNED.append(",".join(addresses))
    os.environ[PIN_ENV] = _PINNED[0]
    return _PINNED[0]
