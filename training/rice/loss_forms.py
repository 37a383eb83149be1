"""Per-row RICE loss formulas on one Partial FC draw: the paper's two-softplus form and margin softmax.

Both take the cosines of the global batch's features to this rank's sampled centres and complete
their sums over ranks with all-reduces, so every rank returns the same per-row values. Notation:
t = the row's *target* centres (they get the margin and are never negatives), Q = every other
sampled centre, φ the margin, s the scale.

- ``paper`` (RICE Eq. 3/4): ``log(1 + Σ_t e^{-s·φ(cos_t)}) + log(1 + Σ_Q e^{s·cos_j})``.
- ``softmax`` (the released Partial FC / CombinedMarginLoss path): per target,
  ``-log(e^{s·φ(cos_t)} / (e^{s·φ(cos_t)} + Σ_Q e^{s·cos_j}))`` = ``softplus(lse_Q - s·φ(cos_t))``,
  averaged over the row's targets (one target: ordinary margin cross-entropy).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from regionset.training.distributed import all_reduce_max_, all_reduce_sum

MarginType = Literal["additive-cosine", "angular"]
LossForm = Literal["paper", "softmax"]


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


def dist_lse(x: torch.Tensor) -> torch.Tensor:
    """Row-wise log-sum-exp of ``x`` across all ranks; entries at the dtype's min are excluded.

    A row with no included entry on any rank gets -inf (an empty sum), with zero gradient.
    """
    floor = torch.finfo(x.dtype).min
    shift = x.amax(1).detach() if x.shape[1] else x.new_full((x.shape[0],), floor)
    shift = all_reduce_max_(shift.clone())
    has = shift > floor / 2
    shift = torch.where(has, shift, torch.zeros_like(shift))
    total = all_reduce_sum(torch.exp(x - shift[:, None]).sum(1))  # excluded entries underflow to 0
    lse = torch.log(torch.where(has, total, torch.ones_like(total))) + shift
    return torch.where(has, lse, torch.full_like(lse, -math.inf))


def form_rows(form: LossForm, cos: torch.Tensor, slot: torch.Tensor, inside: torch.Tensor,
              valid: torch.Tensor, filtered: torch.Tensor | None, scale: float, margin: float,
              kind: MarginType) -> torch.Tensor:
    """Per-row loss of ``form`` (0 for rows without a target).

    Args:
        form: ``paper`` or ``softmax``.
        cos: [B, S] cosines to this rank's sampled centres.
        slot: [B, T] column in ``cos`` of each target (meaningful where ``inside``).
        inside: [B, T] the target lives in this rank's sample.
        valid: [B, T] the target exists (on any rank); the same on every rank.
        filtered: [B, S] negatives whose logit is zeroed (inter-class filter), or None.
        scale, margin, kind: s, m and the margin type.
    """
    floor = torch.finfo(cos.dtype).min
    target = torch.zeros_like(cos, dtype=torch.uint8).scatter_reduce_(1, slot, inside.to(torch.uint8), "amax")
    logit = scale * cos
    if filtered is not None:  # as the released code: the logit becomes 0 (e^0 stays in the sum), no gradient
        logit = logit.masked_fill(filtered & ~target.bool(), 0.0)
    lse_neg = dist_lse(logit.masked_fill(target.bool(), floor))
    target_logit = scale * apply_margin(cos.gather(1, slot), margin, kind)
    if form == "paper":
        lse_pos = dist_lse(torch.where(inside, -target_logit, torch.full_like(target_logit, floor)))
        per_row = F.softplus(lse_pos) + F.softplus(lse_neg)
        return torch.where(valid.any(1), per_row, torch.zeros_like(per_row))
    # softmax: the owner rank holds each target logit; the (identity-backward) sum shares it
    t = all_reduce_sum(torch.where(inside, target_logit, torch.zeros_like(target_logit)))
    per_target = torch.where(valid, F.softplus(lse_neg[:, None] - t), torch.zeros_like(t))
    return per_target.sum(1) / valid.sum(1).clamp_min(1)
