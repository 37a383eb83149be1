"""RICE ViT: an open_clip vision tower whose last layers are Region Transformer layers.

The trunk *is* an ``open_clip.transformer.VisionTransformer`` (pre-LN CLIP ViT with a class token),
so it loads from and exports to open_clip checkpoints unchanged. In the last ``region_layers``
blocks, one query per region joins the sequence and attends, through an additive mask (0 inside the
region's patch tokens, -inf elsewhere) passed to ``F.scaled_dot_product_attention``, to the image
tokens only; image tokens never attend to queries, so the image path (CLS and patch outputs) is
exactly the plain ViT's. The region layers reuse the trunk blocks' own weights (ln, qkv, mlp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn
from torch.utils.checkpoint import checkpoint

# name -> ViT shape; ``open_clip`` is the matching open_clip model name (None: custom config).
VIT_CONFIGS: dict[str, dict] = {
    "nano": dict(image_size=32, patch_size=8, width=64, layers=2, heads=2, output_dim=32, open_clip=None),
    "tiny": dict(image_size=64, patch_size=8, width=128, layers=4, heads=4, output_dim=64, open_clip=None),
    "B-16": dict(image_size=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512, open_clip="ViT-B-16"),
    "L-14": dict(image_size=224, patch_size=14, width=1024, layers=24, heads=16, output_dim=768, open_clip="ViT-L-14"),
}


@dataclass(frozen=True)
class ModelConfig:
    """RICE model settings.

    Args:
        name: a key of ``VIT_CONFIGS`` (nano and tiny for tests and CPU runs, B-16, L-14).
        image_size: input side; 0 keeps the named config's.
        region_layers: how many of the last blocks also run region queries (>= 1).
        query_init: ``cls`` (CLS state + learned vector), ``learned`` (one learned vector) or
            ``mean`` (mean of the region's tokens + learned vector), taken where region layers start.
        init_from: local open_clip checkpoint (full CLIP or visual-only state dict) for the trunk.
        grad_checkpointing: recompute trunk blocks in backward to save memory.
    """

    name: str = "tiny"
    image_size: int = 0
    region_layers: int = 1
    query_init: Literal["cls", "learned", "mean"] = "cls"
    init_from: str | None = None
    grad_checkpointing: bool = False


def vit_shape(cfg: ModelConfig) -> dict:
    """The resolved ViT shape of ``cfg`` (named config with the image size override applied)."""
    if cfg.name not in VIT_CONFIGS:
        raise ValueError(f"model.name={cfg.name!r} is unknown; choose one of {sorted(VIT_CONFIGS)}")
    shape = dict(VIT_CONFIGS[cfg.name])
    if cfg.image_size:
        shape["image_size"] = cfg.image_size
    return shape


def region_block(block: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run an open_clip ``ResidualAttentionBlock`` on ``x`` with an additive attention mask via SDPA.

    Args:
        block: the block whose ln/attention/mlp weights are used.
        x: [B, L, W] tokens.
        mask: [B, 1, L, L] additive mask (0 attend, -inf do not).
    """
    attn: nn.MultiheadAttention = block.attn
    b, n, w = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, heads, w // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
    x = x + block.ls_1(attn.out_proj(out.transpose(1, 2).reshape(b, n, w)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def region_attention_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """Additive mask for [CLS, patches, region queries]: images see images, queries their boxes.

    Args:
        token_mask: [B, R, T] bool, True where region r covers patch token t.

    Returns:
        [B, 1, 1 + T + R, 1 + T + R] float, 0 where attention is allowed and -inf elsewhere.
    """
    b, r, t = token_mask.shape
    n = 1 + t + r
    allow = torch.zeros(b, n, n, dtype=torch.bool, device=token_mask.device)
    allow[:, : 1 + t, : 1 + t] = True
    allow[:, 1 + t:, 1: 1 + t] = token_mask
    return torch.zeros(b, 1, n, n, device=token_mask.device).masked_fill_(~allow[:, None], float("-inf"))


class RiceViT(nn.Module):
    """ViT trunk + Region Transformer layers. ``forward`` -> (CLS embeddings, region embeddings).

    Args:
        cfg: the model settings.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        shape = vit_shape(cfg)
        if not 1 <= cfg.region_layers <= shape["layers"]:
            raise ValueError(f"model.region_layers={cfg.region_layers} must be in 1..{shape['layers']}")
        self.cfg, self.shape = cfg, shape
        self.visual = VisionTransformer(
            image_size=shape["image_size"], patch_size=shape["patch_size"], width=shape["width"],
            layers=shape["layers"], heads=shape["heads"], mlp_ratio=4.0, output_dim=shape["output_dim"])
        std = 0.02 if cfg.query_init == "learned" else 0.0
        self.region_query = nn.Parameter(torch.randn(shape["width"]) * std)
        if cfg.init_from:
            from regionset.training.rice.export import load_open_clip_visual

            self.visual.load_state_dict(load_open_clip_visual(cfg.init_from))

    @property
    def output_dim(self) -> int:
        """Width of the CLS and region embeddings."""
        return self.shape["output_dim"]

    def _queries(self, x: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        b, r, _ = token_mask.shape
        learned = self.region_query.to(x.dtype).expand(b, r, -1)
        if self.cfg.query_init == "cls":
            return x[:, :1] + learned
        if self.cfg.query_init == "mean":
            m = token_mask.to(x.dtype)
            return m @ x[:, 1:] / m.sum(-1, keepdim=True).clamp_min(1) + learned
        return learned

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.visual.ln_post(x)
        return x @ self.visual.proj if self.visual.proj is not None else x

    def forward(self, images: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed images and their regions.

        Args:
            images: [B, 3, S, S] normalised.
            token_mask: [B, R, T] bool region -> patch-token masks (T = (S / patch)^2).

        Returns:
            (CLS embeddings [B, D], region embeddings [B, R, D]), not normalised.
        """
        x = self.visual._embeds(images)
        blocks = list(self.visual.transformer.resblocks)
        split = len(blocks) - self.cfg.region_layers
        for blk in blocks[:split]:
            use_ckpt = self.cfg.grad_checkpointing and self.training
            x = checkpoint(blk, x, use_reentrant=False) if use_ckpt else blk(x)
        t = x.shape[1] - 1
        if token_mask.shape[-1] != t:
            raise ValueError(f"token_mask has {token_mask.shape[-1]} tokens, the model has {t} patches")
        x = torch.cat([x, self._queries(x, token_mask)], dim=1)
        mask = region_attention_mask(token_mask)
        for blk in blocks[split:]:
            x = region_block(blk, x, mask)
        return self._head(x[:, 0]), self._head(x[:, 1 + t:])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """CLS embedding of the plain trunk (what the exported open_clip tower computes)."""
        return self.visual(images)
