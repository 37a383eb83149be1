"""Reconstruction head and loss (Croc stage 1.5, reference/CROC.md §5).

The head reads the LM's last hidden states at the image positions, runs one transformer layer over
the image span and a linear map, and regresses the original L2-normalised projector outputs at
*all* image positions (masked and kept). The target is detached: the projector is trained in this
stage, and a live target would let it chase its own regression.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ReconstructionHead(nn.Module):
    """One pre-norm transformer encoder layer + a linear map, width ``dim`` in and out.

    Args:
        dim: the LM hidden size (= projector output width).
        heads: attention heads of the layer (must divide ``dim``).
        mlp_ratio: feed-forward width as a multiple of ``dim``.
    """

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        heads = _divisor_at_most(dim, heads)
        self.layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=heads, dim_feedforward=int(dim * mlp_ratio), dropout=0.0,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.proj = nn.Linear(dim, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Map (B, N, dim) hidden states at image positions to (B, N, dim) predictions."""
        return self.proj(self.layer(hidden))


def _divisor_at_most(dim: int, heads: int) -> int:
    heads = max(1, min(heads, dim))
    while dim % heads:
        heads -= 1
    return heads


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.01) -> torch.Tensor:
    """SmoothL1(β) between predictions and the detached targets, mean over all elements.

    Args:
        pred: (B, N, D) head outputs.
        target: (B, N, D) original normalised projector outputs (detached here).
        beta: SmoothL1 transition point (0.01 in Croc).
    """
    return F.smooth_l1_loss(pred.float(), target.detach().float(), beta=beta)


def gather_image_states(hidden: torch.Tensor, image_mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Pick the hidden states at image positions, (B, L, D) -> (B, N, D).

    Args:
        hidden: LM hidden states.
        image_mask: (B, L) bool, exactly ``num_tokens`` True per row (one image span per sample).
        num_tokens: N.
    """
    return hidden[image_mask].view(hidden.shape[0], num_tokens, hidden.shape[-1])
