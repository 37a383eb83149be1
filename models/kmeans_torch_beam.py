"""The beam search through the cluster tree (``regionset.models.kmeans_beam``) with torch, on any device.

Same candidates as the numpy beam: the ``B`` nearest level-0 centroids, then at every level the
``B`` nearest among all children of the nodes kept, and at the leaves the nearest child. Here each
level's children are a padded (parents × widest family) table of slots, so a block of rows gathers
its candidates' centroids at once ((rows, B × family, d)) and scores them with one batched product
(float32 accumulation) instead of a loop over parents: a GPU does it in a few kernels. Blocks are
sized to the device's free memory (``regionset.models.kmeans_torch.block_rows``). Deterministic on
CPU and GPU (gathers, products and ``topk``; a near-tie may break differently than numpy's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from regionset.models.kmeans_beam import children_csr
from regionset.models.kmeans_torch import block_rows, free_bytes, resolve_device

if TYPE_CHECKING:
    import torch


def _family_table(parents: np.ndarray, num_parents: int) -> np.ndarray:
    """(num_parents, widest family) int64 child ids of every parent, -1 padded."""
    offsets, order = children_csr(np.asarray(parents), num_parents)
    sizes = np.diff(offsets)
    table = np.full((num_parents, max(1, int(sizes.max(initial=0)))), -1, np.int64)
    slot = np.arange(len(order)) - np.repeat(offsets[:-1], sizes)
    table[np.repeat(np.arange(num_parents), sizes), slot] = order
    return table


def _block(xb: torch.Tensor, cents: list[torch.Tensor], norms: list[torch.Tensor],
           tables: list[torch.Tensor], beam: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf ids, squared distances) of one block of rows on the search device."""
    import torch

    s = torch.addmm(norms[0], xb, cents[0].T, beta=1.0, alpha=-2.0)
    kept = s.topk(min(beam, s.shape[1]), dim=1, largest=False).indices
    for lv in range(1, len(cents)):
        cand = tables[lv - 1][kept].flatten(1)  # (rows, B × family), -1 = no child
        ok = cand >= 0
        safe = cand.clamp_min(0)
        s = norms[lv][safe] - 2.0 * torch.bmm(cents[lv][safe], xb[:, :, None])[:, :, 0]
        s = s.masked_fill(~ok, float("inf"))
        keep = 1 if lv + 1 == len(cents) else min(beam, s.shape[1])
        top = s.topk(keep, dim=1, largest=False)
        kept = torch.gather(cand, 1, top.indices)
    best = top.values[:, 0] if len(cents) > 1 else s.gather(1, kept[:, :1])[:, 0]
    leaf = kept[:, 0]
    return leaf, (best + (xb * xb).sum(1)).clamp_min_(0)


def beam_search_torch(x: np.ndarray, centroids: list[np.ndarray], parents: list[np.ndarray], beam: int,
                      device: str = "auto", free: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest leaf of every row found by a beam of width ``beam``, with torch on ``device``.

    Args:
        x: (n, d) float32 queries (already normalised in spherical mode).
        centroids: per level (K_i, d) float32, level 0 the coarsest.
        parents: per level (K_i,) parent ids at the level above.
        beam: nodes kept per level (>= 1).
        device: ``cpu``, ``cuda``, ``gpu`` or ``auto`` (``regionset.models.kmeans_torch.resolve_device``).
        free: bytes a block may use (default: the device's free memory now).

    Returns:
        (leaf ids int64 (n,), squared distances float32 (n,)).
    """
    if beam < 1:
        raise ValueError(f"assign.beam: need a width of 1 or more, got {beam}")
    import torch

    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    dev = resolve_device(device)
    tabs = [_family_table(parents[lv], len(centroids[lv - 1])) for lv in range(1, len(centroids))]
    d = centroids[0].shape[1]
    widest = max([beam * t.shape[1] for t in tabs] + [len(centroids[0])])
    resident = sum(4 * c.shape[0] * (d + 1) for c in centroids) + sum(8 * t.size for t in tabs)
    # per row: the gathered candidates' centroids (4 d each), their ids, norms and scores
    rows = block_rows(widest, d, free if free is not None else free_bytes(dev),
                      row_bytes=widest * (4 * d + 24), resident=resident)
    with torch.no_grad():
        cents = [torch.from_numpy(np.ascontiguousarray(c, np.float32)).to(dev) for c in centroids]
        norms = [(c * c).sum(1) for c in cents]
        tables = [torch.from_numpy(t).to(dev) for t in tabs]
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        leaf = np.empty(n, np.int64)
        dist = np.empty(n, np.float32)
        for lo in range(0, n, rows):
            ids, dd = _block(xt[lo:lo + rows].to(dev), cents, norms, tables, beam)
            leaf[lo:lo + rows] = ids.cpu().numpy()
            dist[lo:lo + rows] = dd.cpu().numpy()
    return leaf, dist
