"""Prompt token pool and per-image random masking (Croc stage 1.5, docs/training-croc.md).

The pool holds P learnable vectors of the LM's width and is trained only through the losses of
the masked inputs it replaces. Rows start at unit norm by default: ``randn`` rows have norm √d,
so every masked token would first snap to the few shortest rows.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

PoolInit = Literal["unit", "normal"]


class PromptTokenPool(nn.Module):
    """P learnable prompt tokens of width ``dim``.

    Args:
        size: number of pool vectors P.
        dim: vector width (the LM hidden size).
        init: ``unit`` (random directions, unit norm; default) or ``normal`` (N(0, 1) rows).
    """

    def __init__(self, size: int, dim: int, init: PoolInit = "unit") -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"croc.pool_size must be >= 1, got {size}")
        weight = torch.randn(size, dim)
        if init == "unit":
            weight = nn.functional.normalize(weight, dim=-1)
        elif init != "normal":
            raise ValueError(f"croc.pool_init: expected 'unit' or 'normal', got {init!r}")
        self.weight = nn.Parameter(weight)

    @property
    def size(self) -> int:
        """Number of pool vectors."""
        return self.weight.shape[0]

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """Gather pool vectors (differentiable w.r.t. the pool).

        Args:
            index: long tensor of pool indices, any shape.

        Returns:
            ``index.shape + (dim,)`` tensor.
        """
        return self.weight[index]


def num_masked(num_tokens: int, ratio: float) -> int:
    """How many of ``num_tokens`` visual tokens a ``ratio`` masks (at least 1 if ratio > 0).

    Args:
        num_tokens: visual tokens per image.
        ratio: fraction in [0, 1].
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"croc.mask_ratio must be in [0, 1], got {ratio}")
    if ratio == 0.0:
        return 0
    return max(1, min(num_tokens, int(round(num_tokens * ratio))))


def random_mask(batch: int, num_tokens: int, ratio: float, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Choose, independently per image, ``num_masked(num_tokens, ratio)`` token positions.

    Args:
        batch: number of images B.
        num_tokens: visual tokens per image N.
        ratio: fraction masked.
        generator: optional torch generator (CPU) for reproducible draws.
        device: device of the returned indices.

    Returns:
        (B, M) long tensor of masked positions in [0, N), sorted per row.
    """
    m = num_masked(num_tokens, ratio)
    scores = torch.rand(batch, num_tokens, generator=generator)
    idx = scores.argsort(dim=1)[:, :m].sort(dim=1).values
    return idx.to(device)


def replace_tokens(tokens: torch.Tensor, positions: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """Return a copy of ``tokens`` with ``tokens[b, positions[b, j]] = replacement[b, j]``.

    Args:
        tokens: (B, N, D) visual embeddings.
        positions: (B, M) masked positions.
        replacement: (B, M, D) vectors to put there (gradients flow into both inputs).
    """
    index = positions.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    return tokens.scatter(1, index, replacement.to(tokens.dtype))
