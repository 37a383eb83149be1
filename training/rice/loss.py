"""Unified region cluster discrimination loss with margin, Partial FC sampling, sharded centres.

For a feature f with positive centres P (one leaf cluster for an object region, up to M token ids
for a text region) and negatives Q (the sampled centres that are not positives), with cosine
similarities and the margin applied to positives only (RICE §3, reference/RICE.md):

    L = log(1 + Σ_{i∈P} exp(-s·φ(cos_i))) + log(1 + Σ_{j∈Q} exp(s·cos_j))

φ(c) = c - m (``additive-cosine``) or cos(θ + m) (``angular``, ArcFace with its usual fallback past
π - m). Centres are sharded evenly over ranks; features and labels are all-gathered; each rank keeps
the positives that live in its shard plus a random fraction ρ of its other centres (Partial FC);
both log-sum-exps are completed with all-reduces (max shift, then sum), so every rank holds the
same global per-row losses; callers average rows that have a positive (``RowLosses.mean``).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from training.distributed import all_reduce_max_, all_reduce_sum, gather_features, gather_nograd, rank_world

MarginType = Literal["additive-cosine", "angular"]


def apply_margin(cos: torch.Tensor, margin: float, kind: MarginType) -> torch.Tensor:
    """Margin on positive cosines: ``cos - m`` or ``cos(acos(cos) + m)`` (monotone fallback past π-m).

    Args:
        cos: cosine similarities of positives.
        margin: m.
        kind: ``additive-cosine`` or ``angular``.
    """
    if kind == "additive-cosine":
        return cos - margin
    sin = torch.sqrt((1.0 - cos * cos).clamp_min(1e-12))
    phi = cos * math.cos(margin) - sin * math.sin(margin)
    return torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)


def _dist_lse(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise log-sum-exp of ``x`` across all ranks; entries at the dtype's min are excluded.

    Returns:
        (lse, whether the row has any included entry on any rank).
    """
    floor = torch.finfo(x.dtype).min
    shift = x.amax(1).detach() if x.shape[1] else x.new_full((x.shape[0],), floor)
    shift = all_reduce_max_(shift.clone())
    has = shift > floor / 2
    shift = torch.where(has, shift, torch.zeros_like(shift))
    total = all_reduce_sum(torch.exp(x - shift[:, None]).sum(1))  # excluded entries underflow to 0
    return torch.log(torch.where(has, total, torch.ones_like(total))) + shift, has


def unique_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels per row with repeats replaced by -1 (a positive counts once, as in a set)."""
    ordered = labels.sort(dim=1).values
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return torch.where(repeat, torch.full_like(ordered, -1), ordered)


def shard_range(num_classes: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of the centres rank ``rank`` of ``world`` holds (even split, remainder first)."""
    base, extra = divmod(num_classes, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class PartialFCLoss(nn.Module):
    """Region cluster discrimination over ``num_classes`` centres sharded over the process group.

    Args:
        num_classes: K, total number of centres (clusters or vocabulary tokens).
        dim: feature width.
        sample_rate: ρ, fraction of each rank's centres used per step (1.0: all, dense).
        margin: m on positive cosines.
        scale: s.
        margin_type: ``additive-cosine`` or ``angular``.
        rank, world_size: default from the process group.
    """

    def __init__(self, num_classes: int, dim: int, sample_rate: float = 0.1, margin: float = 0.3,
                 scale: float = 64.0, margin_type: MarginType = "additive-cosine",
                 rank: int | None = None, world_size: int | None = None):
        super().__init__()
        r, w = rank_world()
        self.rank, self.world = (r if rank is None else rank), (w if world_size is None else world_size)
        self.num_classes, self.sample_rate = num_classes, sample_rate
        self.margin, self.scale, self.margin_type = margin, scale, margin_type
        self.start, self.end = shard_range(num_classes, self.rank, self.world)
        self.weight = nn.Parameter(torch.randn(self.end - self.start, dim) * 0.01)

    def sample(self, labels: torch.Tensor) -> torch.Tensor:
        """Sorted local centre indices for this step: every local positive plus ρ of the rest."""
        n = self.weight.shape[0]
        if self.sample_rate >= 1.0:
            return torch.arange(n, device=self.weight.device)
        local = labels[(labels >= self.start) & (labels < self.end)] - self.start
        score = torch.rand(n, device=self.weight.device)
        score[local] = 2.0  # positives are always kept
        keep = max(math.ceil(self.sample_rate * n), int((score > 1.0).sum()))
        return torch.topk(score, keep, sorted=False).indices.sort().values

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                groups: torch.Tensor | None = None) -> RowLosses:
        """Per-row losses of the global batch (every rank returns the same values).

        Args:
            features: [B, D] this rank's features (not necessarily normalised).
            labels: [B, P] global class ids, -1 for padding; a row without labels is ignored.
            groups: optional [B] int row kinds (e.g. region vs CLS rows), gathered alongside.

        Returns:
            :class:`RowLosses` over the global batch (rank-major row order).
        """
        with torch.autocast(features.device.type, enabled=False):
            dtype = torch.promote_types(features.dtype, torch.float32)  # fp32 under bf16; fp64 kept
            feats = F.normalize(gather_features(features.to(dtype)), dim=1)
            labels = unique_labels(gather_nograd(labels.long()))
            if labels.numel() and int(labels.max()) >= self.num_classes:
                raise ValueError(f"label {int(labels.max())} >= num_classes {self.num_classes}: "
                                 "set the loss's class count to the data's (leaf clusters / vocabulary)")
            index = self.sample(labels)
            centres = F.normalize(self.weight.to(dtype)[index], dim=1)
            cos = (feats @ centres.t()).clamp(-1.0, 1.0)  # [B_global, S_local]
            floor = torch.finfo(dtype).min
            inside = (labels >= self.start) & (labels < self.end)  # positives held by this rank
            local = torch.where(inside, labels - self.start, torch.zeros_like(labels))
            slot = torch.searchsorted(index, local).clamp_max(max(len(index) - 1, 0))
            # positives: only the [B, P] gathered entries; negatives: every other sampled centre
            pos_logit = -self.scale * apply_margin(cos.gather(1, slot), self.margin, self.margin_type)
            lse_pos, has_pos = _dist_lse(torch.where(inside, pos_logit, torch.full_like(pos_logit, floor)))
            pos = torch.zeros_like(cos, dtype=torch.uint8).scatter_reduce_(1, slot, inside.to(torch.uint8), "amax")
            neg_logit = (self.scale * cos).masked_fill(pos.bool(), floor)
            lse_neg, _ = _dist_lse(neg_logit)
            per_row = F.softplus(lse_pos) + F.softplus(lse_neg)
        group = gather_nograd(groups) if groups is not None else torch.zeros_like(has_pos, dtype=torch.long)
        return RowLosses(torch.where(has_pos, per_row, torch.zeros_like(per_row)), has_pos, group)


class RowLosses(NamedTuple):
    """Per-row losses of the global batch: ``loss`` (0 where ``has_pos`` is False), row ``group``."""

    loss: torch.Tensor
    has_pos: torch.Tensor
    group: torch.Tensor

    def mean(self, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, row count) over rows with a positive, optionally of one group only."""
        keep = self.has_pos if group is None else self.has_pos & (self.group == group)
        count = keep.sum()
        return torch.where(keep, self.loss, torch.zeros_like(self.loss)).sum() / count.clamp_min(1), count
