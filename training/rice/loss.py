"""Unified region cluster discrimination over sharded centres with Partial FC sampling.

A feature f has positive centres (one leaf cluster for an object region, up to M token ids for a
text region, the image's clusters for a CLS row). Cosines are of L2-normalised features and
centres; the margin φ goes on targets only. Two loss forms (``loss_forms.py``), two multi-label
policies:

- ``joint``: one Partial FC draw; all the row's positives are targets at once (none is a negative).
- ``per_label``: every label column is its own single-target problem with its *own* draw; the
  row's other positives are ordinary negatives there (as in the released code); the row's loss is
  the mean over its labels.

``labels_per_sample`` > 0 keeps a random subset of that many distinct labels per row first (real
labels before padding). ``interclass_filter`` > 0 zeroes the logit of every non-target centre
whose cosine exceeds it: cosine to the row's feature (``interclass_ref: feature``, the released
code) or to the row's target centre (``centre``). The budget of one draw on a rank with K_local
centres is ``max(round(ρ·K_local), #positives on the rank)`` with round = floor (released code) or
ceil. Centres are sharded evenly over ranks, features and labels all-gathered, sums completed with
all-reduces: W ranks give the loss and gradients of one process (``test_loss_ddp.py``).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from regionset.training.distributed import all_reduce_sum, gather_features, gather_nograd, rank_world
from regionset.training.rice.loss_forms import LossForm, MarginType, apply_margin, form_rows

__all__ = ["FilterRef", "LossForm", "MarginType", "MultiLabel", "PartialFCLoss", "Rounding", "RowLosses",
           "apply_margin", "shard_range"]

MultiLabel = Literal["joint", "per_label"]
FilterRef = Literal["feature", "centre"]
Rounding = Literal["floor", "ceil"]


def unique_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels per row with repeats replaced by -1 (a positive counts once, as in a set)."""
    ordered = labels.sort(dim=1).values
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return torch.where(repeat, torch.full_like(ordered, -1), ordered)


def subset_labels(labels: torch.Tensor, keep: int) -> torch.Tensor:
    """A uniformly random subset of ``keep`` labels per row (real labels before -1 padding)."""
    if keep <= 0 or labels.shape[1] <= keep:
        return labels
    score = torch.rand(labels.shape, device=labels.device) + (labels >= 0)
    return labels.gather(1, score.topk(keep, dim=1).indices)


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
        sample_rate: ρ, fraction of each rank's centres drawn per step (1.0: all, dense).
        margin: m on target cosines.
        scale: s.
        margin_type: ``additive-cosine`` or ``angular``.
        form: ``paper`` (Eq. 3/4) or ``softmax`` (margin cross-entropy).
        multilabel: ``joint`` or ``per_label``.
        labels_per_sample: random subset of labels kept per row (0: all).
        interclass_filter: cosine threshold of the inter-class filter (0: off).
        interclass_ref: ``feature`` or ``centre``, what the filter's cosine is measured to.
        budget_rounding: ``floor`` or ``ceil`` of ρ·K_local.
        rank, world_size: default from the process group.
    """

    def __init__(self, num_classes: int, dim: int, sample_rate: float = 0.1, margin: float = 0.3,
                 scale: float = 64.0, margin_type: MarginType = "additive-cosine", form: LossForm = "softmax",
                 multilabel: MultiLabel = "joint", labels_per_sample: int = 0, interclass_filter: float = 0.0,
                 interclass_ref: FilterRef = "feature", budget_rounding: Rounding = "floor",
                 rank: int | None = None, world_size: int | None = None):
        super().__init__()
        r, w = rank_world()
        self.rank, self.world = (r if rank is None else rank), (w if world_size is None else world_size)
        self.num_classes, self.sample_rate = num_classes, sample_rate
        self.margin, self.scale, self.margin_type = margin, scale, margin_type
        self.form, self.multilabel, self.labels_per_sample = form, multilabel, labels_per_sample
        self.interclass_filter, self.interclass_ref = interclass_filter, interclass_ref
        self.budget_rounding = budget_rounding
        self.start, self.end = shard_range(num_classes, self.rank, self.world)
        self.weight = nn.Parameter(torch.randn(self.end - self.start, dim) * 0.01)

    def budget(self) -> int:
        """Centres one draw keeps on this rank when positives fit: floor or ceil of ρ·K_local."""
        n = self.weight.shape[0]
        return (math.floor if self.budget_rounding == "floor" else math.ceil)(self.sample_rate * n)

    def sample(self, labels: torch.Tensor) -> torch.Tensor:
        """Sorted local centre indices of one draw: every local positive, topped up at random to the budget."""
        n = self.weight.shape[0]
        if self.sample_rate >= 1.0:
            return torch.arange(n, device=self.weight.device)
        local = labels[(labels >= self.start) & (labels < self.end)] - self.start
        score = torch.rand(n, device=self.weight.device)
        score[local] = 2.0  # positives are always kept
        keep = max(self.budget(), int((score > 1.0).sum()))
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
            labels = gather_nograd(subset_labels(unique_labels(labels.long()), self.labels_per_sample))
            if labels.numel() and int(labels.max()) >= self.num_classes:
                raise ValueError(f"label {int(labels.max())} >= num_classes {self.num_classes}: "
                                 "set the loss's class count to the data's (leaf clusters / vocabulary)")
            has = (labels >= 0).any(1)
            if self.multilabel == "joint":
                index = self.sample(labels)
                per_row = self._draw(feats, labels, index, self._centres(index, dtype))
            else:
                total, count = torch.zeros_like(feats[:, 0]), torch.zeros_like(feats[:, 0])
                # an independent draw per label column, over the rows that have one (same rows on every rank)
                cols = [(rows, col[rows, None]) for col in labels.t() if len(rows := (col >= 0).nonzero()[:, 0])]
                draws = [self.sample(targets) for _, targets in cols]
                banks = self._centres(torch.cat(draws), dtype).split([len(d) for d in draws]) if draws else []
                for (rows, targets), index, centres in zip(cols, draws, banks):
                    total = total.index_add(0, rows, self._draw(feats[rows], targets, index, centres))
                    count = count.index_add(0, rows, torch.ones_like(rows, dtype=count.dtype))
                per_row = total / count.clamp_min(1)
        group = gather_nograd(groups) if groups is not None else torch.zeros_like(has, dtype=torch.long)
        return RowLosses(torch.where(has, per_row, torch.zeros_like(per_row)), has, group)

    def _centres(self, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Normalised centres ``index`` of this rank's shard (one gather: one sparse-to-dense backward)."""
        return F.normalize(self.weight.to(dtype)[index], dim=1)

    def _draw(self, feats: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
              centres: torch.Tensor) -> torch.Tensor:
        """Per-row loss of one Partial FC draw ``index`` (its ``centres``) with targets [B, T] (global ids)."""
        cos = (feats @ centres.t()).clamp(-1.0, 1.0)  # [B_global, S_local]
        inside = (targets >= self.start) & (targets < self.end)  # targets held by this rank
        local = torch.where(inside, targets - self.start, torch.zeros_like(targets))
        slot = torch.searchsorted(index, local).clamp_max(max(len(index) - 1, 0))
        filtered = None
        if self.interclass_filter > 0:
            ref = cos if self.interclass_ref == "feature" else self._target_cos(centres, local, inside)
            filtered = ref.detach() > self.interclass_filter
        return form_rows(self.form, cos, slot, inside, targets >= 0, filtered, self.scale, self.margin,
                         self.margin_type)

    @torch.no_grad()
    def _target_cos(self, centres: torch.Tensor, local: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """[B, S] largest cosine of each sampled centre to the row's target centres (any rank's)."""
        bank = F.normalize(self.weight.detach().to(centres.dtype), dim=1)
        vectors = torch.where(inside[..., None], bank[local], torch.zeros_like(bank[local]))
        vectors = all_reduce_sum(vectors)  # [B, T, D]: each target's centre, from the rank that holds it
        best = torch.full((local.shape[0], centres.shape[0]), -2.0, dtype=centres.dtype, device=centres.device)
        for t in range(local.shape[1]):  # a padded target has a zero vector: cosine 0, never above a threshold > 0
            best = torch.maximum(best, vectors[:, t] @ centres.t())
        return best


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
