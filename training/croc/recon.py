"""Reconstruction head and loss (Croc stage 1.5, docs/training-croc.md).

The head reads the LM's last hidden states at the image positions, adds optional learned position
embeddings (one per image token), runs ``layers`` transformer layers over the image span and a
linear map, and regresses the original L2-normalised projector outputs at *all* image positions
(masked and kept). The target is detached: the projector is trained in this stage, and a live
target would let it chase its own regression.

Layouts (``method.recon_*``; docs/training-croc.md compares them):
- regionset default: no position embeddings, one pre-norm layer (8 heads, 4x FFN, no dropout);
- Croc's released head: position embeddings for the image tokens, one post-norm BERT-style layer
  (head width 64, 4x FFN, dropout 0.1, LayerNorm eps 1e-12) and a linear map;
- ViCToR's head: the linear map alone (``layers: 0``).
The post-norm layer names its parameters as ``transformers``' ``BertLayer`` does, so released
weights load by renaming the prefix (``transform_block.layers.0.`` -> ``recon_head.layer.``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

HeadNorm = Literal["pre", "post"]
BERT_LN_EPS = 1e-12  # BertConfig's layer_norm_eps, used by the released head


class PostNormLayer(nn.Module):
    """A BERT encoder layer: self-attention and GELU FFN, each ``LayerNorm(x + dropout(sublayer))``.

    Args:
        dim: width.
        heads: attention heads (must divide ``dim``).
        ffn: feed-forward width.
        dropout: on the attention probabilities and on each sub-layer's output (as BERT).
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attention = nn.ModuleDict({
            "self": nn.ModuleDict({k: nn.Linear(dim, dim) for k in ("query", "key", "value")}),
            "output": nn.ModuleDict({"dense": nn.Linear(dim, dim), "LayerNorm": nn.LayerNorm(dim, BERT_LN_EPS)}),
        })
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(dim, ffn)})
        self.output = nn.ModuleDict({"dense": nn.Linear(ffn, dim), "LayerNorm": nn.LayerNorm(dim, BERT_LN_EPS)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim), bidirectional over the N positions."""
        b, n, d = x.shape
        qkv = self.attention["self"]
        q, k, v = (qkv[name](x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for name in ("query", "key", "value"))
        drop = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=drop).transpose(1, 2).reshape(b, n, d)
        out = self.attention["output"]
        x = out["LayerNorm"](x + F.dropout(out["dense"](a), drop, self.training))
        h = F.gelu(self.intermediate["dense"](x))
        return self.output["LayerNorm"](x + F.dropout(self.output["dense"](h), drop, self.training))


class ReconstructionHead(nn.Module):
    """[position embeddings] + ``layers`` transformer layers + a linear map, width ``dim`` in and out.

    Args:
        dim: the LM hidden size (= projector output width).
        heads: attention heads of each layer (lowered to a divisor of ``dim``).
        mlp_ratio: feed-forward width as a multiple of ``dim``.
        layers: transformer layers (0 = the linear map alone).
        norm: ``pre`` (pre-norm ``nn.TransformerEncoderLayer``) or ``post`` (BERT-style, see
            :class:`PostNormLayer`).
        dropout: dropout inside the layers.
        positions: learned position embeddings, one per image token (0 = none); inputs must then
            have exactly this many positions.
        head_dim: when > 0, ``heads = dim // head_dim`` (BERT's rule) instead of ``heads``.
        init_std: when > 0, linear and embedding weights start N(0, init_std) with zero biases (what
            ``transformers``' ``post_init`` gives the released head, ``initializer_range`` 0.02);
            0 keeps PyTorch's default initialisation.
    """

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 4.0, layers: int = 1, norm: HeadNorm = "pre",
                 dropout: float = 0.0, positions: int = 0, head_dim: int = 0,
                 init_std: float = 0.0) -> None:
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"croc.recon_norm: expected 'pre' or 'post', got {norm!r}")
        if layers < 0 or positions < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"croc.recon_*: bad head options layers={layers} positions={positions} dropout={dropout}")
        heads = _divisor_at_most(dim, dim // head_dim if head_dim > 0 else heads)
        ffn = int(dim * mlp_ratio)
        self.position_embeddings = nn.Embedding(positions, dim) if positions else None
        made = [self._layer(dim, heads, ffn, norm, dropout) for _ in range(layers)]
        self.layer = None if not made else made[0] if layers == 1 else nn.Sequential(*made)
        self.proj = nn.Linear(dim, dim)
        if init_std > 0:
            for module in self.modules():
                if isinstance(module, nn.Linear | nn.Embedding):
                    nn.init.normal_(module.weight, std=init_std)
                if isinstance(module, nn.MultiheadAttention):  # its packed q/k/v is no nn.Linear
                    nn.init.normal_(module.in_proj_weight, std=init_std)
                    nn.init.zeros_(module.in_proj_bias)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)

    @staticmethod
    def _layer(dim: int, heads: int, ffn: int, norm: HeadNorm, dropout: float) -> nn.Module:
        if norm == "post":
            return PostNormLayer(dim, heads, ffn, dropout)
        return nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=ffn, dropout=dropout,
                                          activation="gelu", batch_first=True, norm_first=True)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Map (B, N, dim) hidden states at image positions to (B, N, dim) predictions."""
        if self.position_embeddings is not None:
            n, count = hidden.shape[1], self.position_embeddings.num_embeddings
            if n != count:
                raise ValueError(f"reconstruction head has {count} position embeddings but the image has {n} tokens")
            hidden = hidden + self.position_embeddings.weight.unsqueeze(0).to(hidden.dtype)
        if self.layer is not None:
            hidden = self.layer(hidden)
        return self.proj(hidden)


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
