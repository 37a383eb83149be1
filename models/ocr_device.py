"""Where RapidOCR's ONNX models run: onnxruntime execution providers from ``ocr.device``.

``rapidocr-onnxruntime`` builds its sessions on the CPU provider (its own ``use_cuda`` switch always
takes GPU 0 and never TensorRT), so ``RapidOcr`` rebuilds the det, cls and rec sessions with the
providers chosen here:

- ``cpu``: CPU only (the default install has only this provider).
- ``auto``: CUDA (GPU 0 of the worker) when onnxruntime has the CUDA provider and a GPU is visible;
  otherwise CPU.
- ``cuda`` / ``cuda:N``: CUDA on GPU 0 / GPU N, CPU after it for the operators CUDA lacks. Ray
  narrows ``CUDA_VISIBLE_DEVICES`` to each actor's GPU, so GPU 0 is that worker's own GPU.
- ``tensorrt`` / ``tensorrt:N``: TensorRT, then CUDA, then CPU. Opt-in only: TensorRT builds an
  engine per input shape, and the detector sees many shapes.

A device that names CUDA or TensorRT fails when onnxruntime lacks that provider (one line, in
preflight and at setup), and when the built session did not keep it (onnxruntime falls back to the
CPU silently when the CUDA libraries do not load). The CUDA provider comes with ``onnxruntime-gpu``,
installed only on request (docs/install.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from regionset.models.registry import ModelUnavailable

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|tensorrt)(:(\d+))?$")
NEED = {"cuda": CUDA, "tensorrt": TENSORRT}


def check_device(device: str) -> None:
    """Raise ``ValueError`` unless ``device`` is ``auto``, ``cpu``, ``cuda[:N]`` or ``tensorrt[:N]``."""
    m = DEVICE_RE.match(device)
    if not m or (m.group(2) and m.group(1) in ("auto", "cpu")):
        raise ValueError(f"ocr.device={device!r}: use auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N")


def available_providers() -> list[str]:
    """onnxruntime's available execution providers (``CPUExecutionProvider`` only on a CPU install)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def gpu_visible() -> bool:
    """Whether this process sees a CUDA GPU (through torch, a core dependency)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


def ocr_providers(device: str, available: list[str], gpu: bool) -> list[tuple[str, dict[str, Any]]]:
    """The (provider, options) list for ``device``, most preferred first.

    Args:
        device: ``ocr.device``.
        available: onnxruntime's available providers.
        gpu: whether a GPU is visible (decides ``auto``).

    Raises:
        ModelUnavailable: the device names a provider onnxruntime does not have (one line).
    """
    check_device(device)
    m = DEVICE_RE.match(device)
    kind, index = m.group(1), int(m.group(3) or 0)
    if kind == "auto":
        kind = "cuda" if gpu and CUDA in available else "cpu"
    if kind == "cpu":
        return [(CPU, {})]
    missing = [p for p in ([TENSORRT, CUDA] if kind == "tensorrt" else [CUDA]) if p not in available]
    if missing:
        raise ModelUnavailable(f"ocr.device={device}: onnxruntime has no {missing[0]} (available: {', '.join(available)}); "
                               f"install onnxruntime-gpu (docs/install.md) or set ocr.device=cpu")
    chain = [(CUDA, {"device_id": index}), (CPU, {})]
    if kind == "tensorrt":
        chain.insert(0, (TENSORRT, {"device_id": index}))
    return chain


def rebuild_sessions(sessions: list[Any], providers: list[tuple[str, dict[str, Any]]],
                     make_session: Callable[..., Any] | None = None) -> None:
    """Rebuild each RapidOCR ``OrtInferSession``'s onnxruntime session on ``providers``.

    Args:
        sessions: RapidOCR's wrappers (they hold the onnxruntime session as ``.session``).
        providers: from ``ocr_providers``; nothing is rebuilt for the CPU alone.
        make_session: the session constructor (onnxruntime's ``InferenceSession``; tests pass a fake).

    Raises:
        ModelUnavailable: a rebuilt session did not keep the first provider asked for.
    """
    if [p for p, _ in providers] == [CPU]:
        return
    if make_session is None:
        from onnxruntime import InferenceSession as make_session
    for wrapper in sessions:
        old = wrapper.session
        new = make_session(old._model_path, sess_options=old.get_session_options(),
                           providers=[p for p, _ in providers], provider_options=[o for _, o in providers])
        if providers[0][0] not in new.get_providers():
            raise ModelUnavailable(f"ocr: onnxruntime did not start {providers[0][0]} (it kept {new.get_providers()}); "
                                   f"check the CUDA/cuDNN libraries of onnxruntime-gpu or set ocr.device=cpu")
        wrapper.session = new
