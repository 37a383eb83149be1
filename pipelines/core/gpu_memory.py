"""GPU memory of the driver and its worker processes, for the metrics endpoint (``core/metrics.py``).

Two readers, each optional, neither imports anything heavy on its own:

- ``torch`` (the driver only): when this process already imported torch and initialised CUDA (a
  stage ran in-process on a GPU), the allocator's bytes in use and its peak, per device.
- NVML (``pynvml``, every process under the driver): the bytes the driver reports each process
  holding per device (allocator cache and CUDA context included); peaks are the highest seen.

On a machine without a GPU, or without either reader, both give nothing: the endpoint then reports
``regionset_gpu_devices 0`` and no GPU memory samples, never an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuSample:
    """One process's memory on one device: bytes in use now and the peak (``source`` names the reader)."""

    process: str
    device: str
    used: float
    peak: float
    source: str


def torch_samples(torch: Any = None) -> list[GpuSample]:
    """This process's CUDA allocator figures per device, if torch is loaded and CUDA initialised.

    Args:
        torch: the torch module (default: the one already imported, never importing it here).
    """
    torch = torch if torch is not None else sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return []
        return [GpuSample("driver", f"cuda:{i}", float(cuda.memory_allocated(i)), float(cuda.max_memory_allocated(i)),
                          "torch") for i in range(cuda.device_count())]
    except Exception:  # noqa: BLE001 - a metric must never fail the build
        return []


class NvmlReader:
    """Per-process GPU memory from NVML, for the pids asked; initialised once, lazily; off for good
    after one failure (no ``pynvml``, no driver, no GPU).

    Args:
        nvml: the ``pynvml`` module (default: imported on first use; a fake in tests).
    """

    def __init__(self, nvml: Any = None) -> None:
        self.nvml, self.ready, self.off = nvml, False, False

    def _init(self) -> bool:
        if self.off:
            return False
        if not self.ready:
            try:
                if self.nvml is None:
                    import pynvml  # optional: ships with the GPU extras, absent on CPU-only installs

                    self.nvml = pynvml
                self.nvml.nvmlInit()
                self.ready = True
            except Exception:  # noqa: BLE001 - NVMLError, ImportError: no GPU to report
                self.off = True
        return self.ready

    def devices(self) -> int:
        """GPUs NVML sees (0 without NVML)."""
        if not self._init():
            return 0
        try:
            return int(self.nvml.nvmlDeviceGetCount())
        except Exception:  # noqa: BLE001
            return 0

    def used(self, names: dict[int, str]) -> list[tuple[str, str, float]]:
        """(process name, device, bytes) for each process of ``names`` (pid -> name) on each GPU."""
        got: list[tuple[str, str, float]] = []
        for i in range(self.devices()):
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.nvml.nvmlDeviceGetHandleByIndex(i))
            except Exception:  # noqa: BLE001
                continue
            for p in procs:
                name = names.get(int(p.pid))
                if name is not None and p.usedGpuMemory is not None:
                    got.append((name, f"cuda:{i}", float(p.usedGpuMemory)))
        return got


class GpuMemory:
    """GPU memory of the driver and its workers, with peaks kept across reads.

    Args:
        nvml: the NVML reader (``NvmlReader()``; a fake in tests).
        torch: the torch module for the driver's allocator (default: the one imported, if any).
    """

    def __init__(self, nvml: Any = None, torch: Any = None) -> None:
        self.nvml = nvml if nvml is not None else NvmlReader()
        self.torch = torch
        self.peaks: dict[tuple[str, str, str], float] = {}

    def devices(self) -> int:
        """CUDA devices seen by NVML or by this process's torch (0 on a machine without a GPU)."""
        n = self.nvml.devices()
        if n:
            return n
        return len({s.device for s in torch_samples(self.torch)})

    def read(self, processes: dict[int, str]) -> list[GpuSample]:
        """Samples for the driver (torch) and every process in ``processes`` (pid -> name; NVML).

        Args:
            processes: the processes to report, e.g. ``{pid: "driver", pid2: "worker-pid2"}``.
        """
        out = torch_samples(self.torch)
        for name, dev, used in self.nvml.used(processes):
            key = (name, dev, "nvml")
            self.peaks[key] = max(self.peaks.get(key, 0.0), used)
            out.append(GpuSample(name, dev, used, self.peaks[key], "nvml"))
        return out
