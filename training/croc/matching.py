"""Matching masked visual tokens to prompt-pool vectors (Croc stage 1.5, docs/training-croc.md).

The cost is the Euclidean distance between each masked (L2-normalised) visual token and each pool
vector. ``hungarian`` solves the one-to-one assignment on the rectangular cost with
``scipy.optimize.linear_sum_assignment`` (as ViCToR does); ``nearest`` takes a per-row argmin (as
Croc's released code does) and may reuse a pool vector. The cost matrices are computed in one
batched ``torch.cdist`` on the tokens' device; only the O(n³) assignment runs on the CPU, one
sample per task in a thread pool (scipy releases the GIL), so samples are solved concurrently
instead of one after another.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

MatchMode = Literal["hungarian", "nearest"]


def match_rows(cost: np.ndarray, mode: MatchMode = "hungarian") -> np.ndarray:
    """Assign every row of ``cost`` (masked tokens × pool) to a pool column.

    Args:
        cost: (M, P) cost matrix, M <= P for ``hungarian``.
        mode: ``hungarian`` (one-to-one, minimum total cost) or ``nearest`` (per-row argmin).

    Returns:
        (M,) int64 array of pool indices, in row order.
    """
    if mode == "nearest":
        return np.asarray(cost.argmin(axis=1), dtype=np.int64)
    if mode != "hungarian":
        raise ValueError(f"unknown matching mode {mode!r}; expected 'hungarian' or 'nearest'")
    m, p = cost.shape
    if m > p:
        raise ValueError(
            f"hungarian matching needs at least as many pool vectors as masked tokens: {m} masked > "
            f"pool size {p}; raise croc.pool_size or lower croc.mask_ratio"
        )
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(m, dtype=np.int64)
    out[rows] = cols
    return out


@dataclass
class MatchStats:
    """Wall time spent in the last call, split into cost computation and the assignment."""

    cost_s: float = 0.0
    assign_s: float = 0.0


class PoolMatcher:
    """Match each sample's masked tokens to pool indices, samples solved concurrently.

    Args:
        mode: ``hungarian`` or ``nearest``.
        threads: worker threads for the per-sample assignment (1 = serial, in the caller's thread).
    """

    def __init__(self, mode: MatchMode = "hungarian", threads: int = 2) -> None:
        if mode not in ("hungarian", "nearest"):
            raise ValueError(f"unknown matching mode {mode!r}; expected 'hungarian' or 'nearest'")
        self.mode = mode
        self.threads = max(1, int(threads))
        self._pool: ThreadPoolExecutor | None = None
        self.stats = MatchStats()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None  # executors do not pickle; a fresh one is made on first use
        return state

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="croc-match")
        return self._pool

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """Return pool indices for masked tokens.

        Args:
            tokens: (B, M, D) masked visual tokens (normalised), any device.
            pool: (P, D) pool vectors.

        Returns:
            (B, M) long tensor of pool indices on ``tokens.device``.
        """
        t0 = time.perf_counter()
        cost = torch.cdist(tokens.detach().float(), pool.detach().float().unsqueeze(0).expand(
            tokens.shape[0], -1, -1))
        if self.mode == "nearest":
            idx = cost.argmin(dim=-1)
            self.stats = MatchStats(time.perf_counter() - t0, 0.0)
            return idx
        costs = list(cost.cpu().numpy())
        t1 = time.perf_counter()
        if self.threads == 1 or len(costs) == 1:
            rows = [match_rows(c, self.mode) for c in costs]
        else:
            rows = list(self._executor().map(match_rows, costs, [self.mode] * len(costs)))
        self.stats = MatchStats(t1 - t0, time.perf_counter() - t1)
        return torch.from_numpy(np.stack(rows)).to(tokens.device)

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
