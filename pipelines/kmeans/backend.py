"""``kmeans.backend`` and ``kmeans.device`` resolved to what runs the fit: faiss (CPU or its GPUs) or
torch on one device (docs/kmeans-labels.md, "Backends")."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from regionset.pipelines.kmeans.config import KMeansConfig


@dataclass(frozen=True)
class Resolved:
    """What runs the fit.

    Args:
        backend: ``faiss`` or ``torch``.
        device: the torch backend's device (``cpu`` or ``cuda``); ``cpu`` for faiss.
        gpus: GPUs faiss uses (0: its CPU build, or ``device: cpu``); 1 for torch on CUDA.
    """

    backend: str
    device: str
    gpus: int


def _faiss_gpus() -> int | None:
    """GPUs a faiss GPU build sees (0 for faiss-cpu), None without faiss."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _torch_cuda() -> bool:
    """torch is installed and sees a CUDA device (imports torch: only asked when it can decide)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_backend(kc: KMeansConfig) -> Resolved:
    """The backend and device of ``kc`` on this machine.

    ``faiss``: its GPUs unless ``device: cpu``. ``torch``: CUDA when torch sees it and ``device`` is not
    ``cpu``, else the CPU. ``auto``: faiss on its GPUs when a faiss GPU build sees one, else torch
    on CUDA when torch sees one, else faiss on the CPU; ``device: cpu`` is faiss on the CPU and
    never imports torch. Without faiss installed, ``auto`` is torch. ``device: gpu`` with no GPU seen by the chosen backend is a RuntimeError.
    """
    if kc.backend == "torch":
        from regionset.models.kmeans_torch import resolve_device

        dev = resolve_device(kc.device)
        return Resolved("torch", dev, int(dev != "cpu"))
    found = _faiss_gpus()
    if found is None and kc.backend == "auto":  # no faiss at all: torch, on the GPU unless device: cpu
        from regionset.models.kmeans_torch import resolve_device

        dev = resolve_device(kc.device)
        return Resolved("torch", dev, int(dev != "cpu"))
    if found is None:
        raise RuntimeError("kmeans.backend=faiss but faiss is not installed (pip install faiss-cpu, "
                           "or set kmeans.backend=torch)")
    gpus = found if kc.device != "cpu" else 0
    if kc.backend == "auto" and gpus == 0 and kc.device != "cpu" and _torch_cuda():
        return Resolved("torch", "cuda", 1)
    if kc.device == "gpu" and gpus == 0:
        raise RuntimeError("kmeans.device=gpu but faiss sees no GPU (install faiss-gpu, or use "
                           "kmeans.backend=torch / auto, or device=auto)")
    return Resolved("faiss", "cpu", gpus)
