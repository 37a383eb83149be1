"""Exact nearest-centroid search with torch on any device it sees, in blocks sized to its free memory.

The k-means ``backend: torch`` (docs/kmeans-labels.md) runs its Lloyd iterations, the refinement's map step
and the assign stage's exact search through ``nearest``: a block of query rows is scored against
all centroids with one ``addmm`` (``|c|² − 2 x·c``, float32 accumulation) and reduced with ``min``
(ties go to the lowest id). The block is as many rows as fit ``BLOCK_FRACTION`` of the device's
free memory after the centroids (``torch.cuda.mem_get_info`` on a GPU; on the CPU a fixed
``CPU_BUDGET_BYTES``), so the (rows × k) score matrix never outgrows the device.

Determinism: the search is deterministic on CPU and GPU (a matmul and a min per row; on a GPU a
distance within float rounding of a tie may pick another leaf than the CPU does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from regionset.models.registry import executor_gpus

if TYPE_CHECKING:
    import torch

BLOCK_FRACTION = 0.5
"""Share of the device's free memory (after the centroids) one block's temporaries may use."""
CPU_BUDGET_BYTES = 256 << 20
"""The memory budget of a block on the CPU (the numpy search's ``SCORE_BLOCK_BYTES``)."""
MAX_BLOCK_ROWS = 1 << 16
"""Rows per block at most (more saves nothing measurable and delays the first result)."""


def resolve_device(device: str = "auto") -> str:
    """``cpu`` or ``cuda`` for a ``kmeans.device`` / ``assign`` setting.

    Args:
        device: ``cpu`` (never the GPU), ``gpu`` (CUDA, RuntimeError when torch sees none),
            ``auto`` (CUDA when torch sees one, else the CPU), or ``cuda`` / ``cuda:N`` (RuntimeError
            when torch sees no CUDA device in this process).
    """
    if device == "cpu":
        return "cpu"
    import torch

    if device.startswith("cuda"):  # resolved elsewhere (the driver): a worker may see no GPU
        if not torch.cuda.is_available():
            raise RuntimeError(f"k-means torch backend: device {device} was chosen (in the driver) but torch "
                               "sees no CUDA device in this process: give every worker a GPU, or set "
                               "kmeans.device=cpu")
        return device
    if torch.cuda.is_available() and (device == "gpu" or executor_gpus() != 0):
        return "cuda"  # ``auto`` in a Ray/Spark worker given no GPU is the CPU (the node's GPUs are others')
    if device == "gpu":
        raise RuntimeError("kmeans.device=gpu but torch sees no CUDA device (use device=auto or cpu)")
    return "cpu"


def free_bytes(device: str) -> int:
    """Memory a block may use on ``device``: the GPU's free bytes now, ``CPU_BUDGET_BYTES`` on the CPU."""
    if device == "cpu":
        return CPU_BUDGET_BYTES
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def block_rows(k: int, d: int, free: int, row_bytes: int = 0, fraction: float = BLOCK_FRACTION,
               resident: int | None = None) -> int:
    """Query rows per block so that the block's temporaries fit ``fraction`` of ``free`` bytes.

    A row costs its float32 scores against the ``k`` centroids (4k), its float32 copy (4d), its
    result (min value and id, 16 bytes) and ``row_bytes`` more (the caller's own per-row buffers).

    Args:
        k: centroids scored per row.
        d: the dimension.
        free: the device's free bytes (``free_bytes``).
        row_bytes: extra bytes per row.
        fraction: share of what is left after ``resident`` one block may take.
        resident: bytes already placed on the device for the search (default: the centroids and
            their norms, ``4 k (d + 1)``), counted as used.

    Raises:
        MemoryError: not even one row fits (the centroids alone fill the device).
    """
    resident = 4 * k * (d + 1) if resident is None else resident
    per_row = 4 * k + 4 * d + 16 + row_bytes
    budget = int((free - resident) * fraction)
    if budget < per_row:
        raise MemoryError(f"k-means torch backend: {k:,} × {d} centroids ({resident / 2**20:,.0f} MiB) leave "
                          f"no room for one {per_row:,}-byte row in {free / 2**20:,.0f} MiB free")
    return int(min(MAX_BLOCK_ROWS, budget // per_row))


def _tensor(a: np.ndarray, device: str) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device)


def nearest_t(x: torch.Tensor, c: torch.Tensor, rows: int,
              out_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row of ``x`` (on any device; moved block by block to ``c``'s).

    Args:
        x: (n, d) queries (float32, or float16/bfloat16: widened per block).
        c: (k, d) float32 centroids on the search device.
        rows: rows per block (``block_rows``).
        out_ids: optional (n,) int64 tensor on ``c``'s device to fill.

    Returns:
        (ids int64 (n,), squared distances float32 (n,)), on ``c``'s device.
    """
    import torch

    dev = c.device
    n = x.shape[0]
    cn = (c * c).sum(1)
    ids = out_ids if out_ids is not None else torch.empty(n, dtype=torch.int64, device=dev)
    dist = torch.empty(n, dtype=torch.float32, device=dev)
    for lo in range(0, n, rows):
        xb = x[lo:lo + rows].to(dev, torch.float32, non_blocking=True)
        s = torch.addmm(cn, xb, c.T, beta=1.0, alpha=-2.0)
        best, arg = s.min(1)
        ids[lo:lo + len(xb)] = arg
        dist[lo:lo + len(xb)] = (best + (xb * xb).sum(1)).clamp_min_(0)
        del s, xb
    return ids, dist


def nearest(x: np.ndarray, centroids: np.ndarray, device: str = "auto",
            free: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest centroid (squared L2) of every row of ``x`` with torch on ``device``.

    Args:
        x: (n, d) float32 queries.
        centroids: (k, d) float32 centroids.
        device: ``cpu``, ``cuda``, ``gpu`` or ``auto`` (``resolve_device``).
        free: bytes a block may use (default ``free_bytes`` of the device, read now).

    Returns:
        (ids int64 (n,), squared distances float32 (n,)); ties go to the lowest id.
    """
    import torch

    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    dev = resolve_device(device)
    with torch.no_grad():
        c = _tensor(centroids, dev)
        rows = block_rows(len(centroids), c.shape[1], free if free is not None else free_bytes(dev))
        ids, dist = nearest_t(torch.from_numpy(np.ascontiguousarray(x, np.float32)), c, rows)
        return ids.cpu().numpy(), dist.cpu().numpy()


def describe_device(device: str) -> dict[str, Any]:
    """What ``kmeans.json`` records of the torch device: its name and free memory when the fit began."""
    if device == "cpu":
        return {"torch_device": "cpu"}
    import torch

    return {"torch_device": device, "torch_device_name": torch.cuda.get_device_name(torch.device(device)),
            "torch_free_mib": round(free_bytes(device) / 2**20)}
