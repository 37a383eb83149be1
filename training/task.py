"""The task contract the shared loop runs (open_clip's ``task`` shape: one forward that returns losses).

A task is an ``nn.Module`` holding every trained module. It names which children are *replicated*
(wrapped in DDP, gradients averaged, saved once) and which are *sharded* (different on every rank,
e.g. class centres split over ranks; never wrapped, saved per rank). ``training_forward(batch)``
returns a dict of scalar tensors whose ``loss`` entry is the one back-propagated; other entries
are logged as loss parts.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class TrainTask(nn.Module):
    """Base class of training tasks (RICE, Croc). Subclasses set the names and ``training_forward``."""

    replicated: tuple[str, ...] = ("model",)
    sharded: tuple[str, ...] = ()

    def training_forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Losses of one batch; ``loss`` is back-propagated, the rest are logged.

        Args:
            batch: a batch already on the task's device.
        """
        raise NotImplementedError

    def module(self, name: str) -> nn.Module:
        """Child ``name`` without its DDP wrapper."""
        m = getattr(self, name)
        return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m

    def replicated_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the replicated children."""
        for name in self.replicated:
            yield from (p for p in self.module(name).parameters() if p.requires_grad)

    def sharded_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the sharded children."""
        for name in self.sharded:
            yield from (p for p in self.module(name).parameters() if p.requires_grad)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: no decay for gains, biases, tokens and embeddings (ndim < 2), decay otherwise.

        Args:
            weight_decay: decay of the matrices.
        """
        params = [*self.replicated_parameters(), *self.sharded_parameters()]
        return [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]


def move_batch(batch: dict, device: torch.device) -> dict:
    """Tensors of ``batch`` to ``device`` (non-blocking); other values as they are."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def batch_size(batch: dict) -> int:
    """Samples in ``batch``: the leading size of its first tensor."""
    return next(int(v.shape[0]) for v in batch.values() if torch.is_tensor(v))
