"""The vision encoder of the Croc model: patch tokens of an open_clip ViT or of the RICE trunk.

The number of visual tokens is read off the built encoder (image size / patch size, or the
trunk's own count), never assumed: CLIP ViT-L/14-336 gives 576, RICE at higher resolution more.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from regionset.models.clip_registry import CLIP_MEAN, CLIP_STD


@dataclass
class VisionConfig:
    """Which encoder feeds the projector.

    Args:
        kind: ``open_clip`` (a ViT from open_clip) or ``rice`` (the trunk built by ``regionset.training.rice``).
        name: open_clip model name (e.g. ``ViT-L-14-336``); ignored when ``tower`` is given.
        pretrained: open_clip pretrained tag (needs the internet) or a local checkpoint file; none = random init.
        tower: a custom open_clip ``CLIPVisionCfg`` as a mapping (random init), e.g. a tiny ViT for tests.
        feature_layer: which block's output to use; negative counts from the end (LLaVA uses -2).
        rice_model: for ``kind: rice``, the RICE ViT shape name (``regionset.training.rice.model.VIT_CONFIGS``).
        rice_checkpoint: for ``kind: rice``, a local open_clip checkpoint of the trained RICE trunk
            (as exported by RICE training); empty = random init.
    """

    kind: Literal["open_clip", "rice"] = "open_clip"
    name: str | None = "ViT-L-14-336"
    pretrained: str | None = None
    tower: dict[str, Any] = field(default_factory=dict)
    feature_layer: int = -2
    rice_model: str = "tiny"
    rice_checkpoint: str | None = None


class VisionEncoder(nn.Module):
    """Wraps a ViT so that ``forward(images) -> (B, N, width)`` patch tokens (class token dropped).

    Args:
        visual: an open_clip ``VisionTransformer``.
        feature_layer: block index (negative from the end) whose output is returned.
        mean: per-channel normalisation mean of the encoder's preprocessing.
        std: per-channel normalisation std.
    """

    def __init__(self, visual: nn.Module, feature_layer: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        if not hasattr(visual, "forward_intermediates"):
            raise ValueError("croc.vision: only open_clip VisionTransformer towers are supported")
        self.visual = visual
        depth = len(visual.transformer.resblocks)
        layer = feature_layer if feature_layer >= 0 else depth + feature_layer
        if not 0 <= layer < depth:
            raise ValueError(f"croc.vision.feature_layer={feature_layer} is outside a {depth}-block tower")
        self.layer = layer
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        grid = visual.grid_size
        self.num_tokens = int(grid[0] * grid[1])
        self.width = int(visual.transformer.width)
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return (B, num_tokens, width) patch tokens for normalised (B, 3, S, S) images."""
        out = self.visual.forward_intermediates(
            images, indices=[self.layer], intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][0]


def build_vision_encoder(cfg: VisionConfig) -> nn.Module:
    """Build the encoder named by ``cfg`` (random init unless ``pretrained`` is set).

    Args:
        cfg: the vision section of the Croc config.

    Returns:
        A module with ``num_tokens``, ``width``, ``image_size``, ``mean``, ``std`` and
        ``forward(images) -> (B, num_tokens, width)``.
    """
    if cfg.kind == "rice":
        return _build_rice(cfg)
    import open_clip
    from open_clip.model import _build_vision_tower

    if cfg.tower:
        visual = _build_vision_tower(embed_dim=cfg.tower.get("width", 64), vision_cfg=dict(cfg.tower))
        return VisionEncoder(visual, cfg.feature_layer, CLIP_MEAN, CLIP_STD)
    if not cfg.name:
        raise ValueError("croc.vision: set either vision.name (an open_clip model) or vision.tower")
    try:
        model = open_clip.create_model(cfg.name, pretrained=cfg.pretrained or None)
    except Exception as e:  # open_clip raises RuntimeError/OSError/HF errors when offline
        raise RuntimeError(
            f"could not build open_clip model {cfg.name!r} with pretrained={cfg.pretrained!r}: {e}. "
            "Offline, set croc.vision.pretrained to a local checkpoint file (or leave it empty for "
            "random init)."
        ) from e
    mean = getattr(model.visual, "image_mean", None) or CLIP_MEAN
    std = getattr(model.visual, "image_std", None) or CLIP_STD
    return VisionEncoder(model.visual, cfg.feature_layer, mean, std)


def _build_rice(cfg: VisionConfig) -> nn.Module:
    """The RICE trunk (``regionset.training.rice.model.RiceViT``): its open_clip tower's patch tokens."""
    try:
        rice = importlib.import_module("regionset.training.rice.model")
    except ImportError as e:
        raise RuntimeError("croc.vision.kind=rice needs training/rice/model.py (the RICE trunk)") from e
    trunk = rice.RiceViT(rice.ModelConfig(name=cfg.rice_model, init_from=cfg.rice_checkpoint or None))
    return VisionEncoder(trunk.visual, cfg.feature_layer, CLIP_MEAN, CLIP_STD)
