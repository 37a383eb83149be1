"""The mixed attention mask of Croc (docs/training-croc.md) as a 4-D additive mask.

A query may attend to a key when the key is not padding and either the key is not in the future
(causal) or both lie in the bidirectional region:
- ``image`` (default, the paper): the image span only;
- ``prefix`` (Croc's released code): every position before the first answer token;
- ``causal``: no bidirectional region (stages 1 and 2, plain LLaVA).
Padding query rows may attend to themselves only, so that no softmax row is all ``-inf`` (their
outputs carry no label and are never read). ``transformers`` passes a 4-D mask straight to the
attention kernels (eager adds it, SDPA takes it as ``attn_mask``), so position ids must be given too.
"""

from __future__ import annotations

from typing import Literal

import torch

AttentionMode = Literal["image", "prefix", "causal"]


def allowed_pairs(image_mask: torch.Tensor, answer_mask: torch.Tensor, padding_mask: torch.Tensor,
                  mode: AttentionMode = "image") -> torch.Tensor:
    """Boolean (B, L, L) matrix: ``[b, q, k]`` is True when query q may attend to key k.

    Args:
        image_mask: (B, L) True at image-token positions.
        answer_mask: (B, L) True at answer (supervised) positions; the prefix ends at the first one.
        padding_mask: (B, L) True at real tokens, False at padding.
        mode: ``image``, ``prefix`` or ``causal``.
    """
    b, length = padding_mask.shape
    device = padding_mask.device
    pos = torch.arange(length, device=device)
    causal = (pos[None, :] <= pos[:, None]).unsqueeze(0).expand(b, -1, -1)
    if mode == "causal":
        region = torch.zeros_like(padding_mask, dtype=torch.bool)
    elif mode == "image":
        region = image_mask.bool()
    elif mode == "prefix":
        has_answer = answer_mask.any(dim=1, keepdim=True)
        first = torch.where(has_answer, answer_mask.int().argmax(dim=1, keepdim=True),
                            padding_mask.sum(dim=1, keepdim=True))
        region = (pos[None, :] < first) & padding_mask.bool()
    else:
        raise ValueError(f"croc.attention: expected 'image', 'prefix' or 'causal', got {mode!r}")
    bidir = region[:, :, None] & region[:, None, :]
    real = padding_mask.bool()
    allowed = (causal | bidir) & real[:, None, :] & real[:, :, None]
    eye = torch.eye(length, dtype=torch.bool, device=device).unsqueeze(0)
    return allowed | (eye & ~real[:, :, None])


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a boolean (B, L, L) matrix into the (B, 1, L, L) additive mask the LM takes.

    Args:
        allowed: output of :func:`allowed_pairs`.
        dtype: the LM's compute dtype (0 where allowed, the dtype's minimum elsewhere).
    """
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


def build_attention_mask(image_mask: torch.Tensor, answer_mask: torch.Tensor, padding_mask: torch.Tensor,
                         mode: AttentionMode, dtype: torch.dtype) -> torch.Tensor:
    """The (B, 1, L, L) additive mask for ``mode`` (see module docstring).

    Args:
        image_mask: (B, L) image positions.
        answer_mask: (B, L) answer positions.
        padding_mask: (B, L) real tokens.
        mode: ``image``, ``prefix`` or ``causal``.
        dtype: the LM's compute dtype.
    """
    return additive_mask(allowed_pairs(image_mask, answer_mask, padding_mask, mode), dtype)
