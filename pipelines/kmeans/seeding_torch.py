"""``seeding.level_seeds`` (greedy k-means++ over a whole level) on a torch device, for ``backend: torch``.

The same algorithm and the same random draws as the numpy pass (``regionset.pipelines.kmeans.seeding``,
whose docstring explains it): the same subsample of rows, one first seed per cell (its point nearest
the cell mean), then per seed ``trials`` candidates drawn with the same generator, each scored by
the drop of its cell's potential, the best one kept. Here the rows (sorted by cell, so a cell is a
slice) and their potentials live on the device; a candidate costs a few kernels (the cell's
prefix sum, a ``searchsorted``, one matrix-vector product), and the host waits once per seed, to
learn which candidate won. Distances are float32 and potentials float64 as in numpy, so the seeds
are those of the numpy pass up to float rounding (a near-tie between candidates may go the other way).
"""

from __future__ import annotations

import math

import numpy as np

from regionset.models.kmeans_torch import resolve_device
from regionset.pipelines.kmeans.seeding import MIN_TRIALS


def level_seeds_torch(x: np.ndarray, members: np.ndarray, parents: int, want: int, seed: int,
                      points_per_centroid: int = 256, trials: int | None = None,
                      device: str = "cpu") -> list[np.ndarray]:
    """Per parent, the row ids of ``x`` chosen as its seeds (``seeding.level_seeds``'s arguments and
    result), computed on ``device`` (``cpu`` or ``cuda``, resolved)."""
    import torch

    device = resolve_device(device)
    rng = np.random.default_rng(seed)
    n = len(x)
    trials = trials or max(MIN_TRIALS, 2 + int(math.log(max(want, 1))))
    rows = np.arange(n)
    if n > points_per_centroid * want:  # the numpy pass's subsample, drawn the same way
        rows = rng.choice(n, points_per_centroid * want, replace=False)
        _, first = np.unique(members, return_index=True)
        rows = np.union1d(rows, first)
    rows = rows[np.argsort(members[rows], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(members[rows], minlength=parents))]).tolist()
    chosen: list[list[int]] = [[] for _ in range(parents)]
    with torch.no_grad():
        xs = torch.from_numpy(np.ascontiguousarray(x[rows], np.float32)).to(device)
        norms = (xs * xs).sum(1)
        pot = torch.zeros(len(rows), dtype=torch.float64, device=device)
        cell_pot = np.zeros(parents)

        def dist(i: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
            """float64 squared distances of the cell's rows to row ``i`` (0-dim tensor), 0 within rounding."""
            both = norms[lo:hi] + norms[i]
            d = both - 2.0 * (xs[lo:hi] @ xs[i])
            return torch.where(d < 1e-5 * both, torch.zeros_like(d), d).double()

        for p in range(parents):
            lo, hi = bounds[p], bounds[p + 1]
            if hi > lo:
                cell = xs[lo:hi].double()
                i = lo + int(((cell - cell.mean(0)) ** 2).sum(1).argmin())
                del cell
                chosen[p].append(i)
                pot[lo:hi] = dist(torch.tensor(i, device=device), lo, hi)
        if parents:  # one wait for every cell's potential
            sums = torch.stack([pot[bounds[p]:bounds[p + 1]].sum() for p in range(parents)])
            cell_pot = sums.cpu().numpy()
        for _ in range(want - sum(map(len, chosen))):
            total = cell_pot.sum()
            if total <= 0:  # every remaining point coincides with a seed
                break
            cells = np.minimum(np.searchsorted(np.cumsum(cell_pot), rng.random(trials) * total, side="right"),
                               parents - 1)
            cands: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
            for p, u in zip(cells.tolist(), rng.random(trials).tolist()):
                lo, hi = bounds[p], bounds[p + 1]
                if cell_pot[p] <= 0:
                    continue
                target = torch.tensor([u * cell_pot[p]], dtype=torch.float64, device=device)
                j = torch.searchsorted(torch.cumsum(pot[lo:hi], 0), target, right=True)[0].clamp_max(hi - lo - 1)
                i = lo + j
                new = torch.minimum(pot[lo:hi], dist(i, lo, hi))
                cands.append((p, i, new, new.sum()))
            if not cands:
                break
            gains = torch.tensor([cell_pot[p] for p, *_ in cands], dtype=torch.float64, device=device) \
                - torch.stack([c[3] for c in cands])
            best = int(gains.argmax())  # the first of equal gains, as the numpy pass's strict '>'
            p, i, new, new_sum = cands[best]
            chosen[p].append(int(i))
            pot[bounds[p]:bounds[p + 1]] = new
            cell_pot[p] = float(new_sum)
    return [rows[np.asarray(c, np.int64)] for c in chosen]
