"""The Croc training task: ``training_forward(batch) -> losses`` for stages 1, 1.5 and 2.

Stage 1.5 per step: project the images' tokens (unit norm), keep them detached as the
reconstruction target, mask ``mask_ratio`` of them per image, match the masked tokens to pool
vectors (Hungarian by default), swap the matched vectors in, run the LM with the mixed attention
mask, then CE on the caption + ``recon_weight`` × SmoothL1 of the head's predictions at every image
position. The masking draws come from ``(seed, rank, step)``; the step counter is a buffer saved
with the model, so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from regionset.training.croc.matching import PoolMatcher
from regionset.training.croc.method import GROUPS, CrocMethodConfig
from regionset.training.croc.model import CrocModel
from regionset.training.croc.pool import random_mask
from regionset.training.croc.recon import reconstruction_loss
from regionset.training.croc.sequence import IGNORE
from regionset.training.distributed import rank_world
from regionset.training.task import TrainTask


def caption_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: position t predicts label t + 1; ``-100`` is ignored.

    Args:
        logits: (B, K, V), for the same K positions as ``labels``.
        labels: (B, K).
    """
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE)


class CrocTask(TrainTask):
    """Wraps a :class:`CrocModel` with the stage's losses and parameter groups.

    The whole model is one replicated child (``model``), wrapped in DDP by the shared loop.

    Args:
        model: the Croc model (with pool and head for stage 1.5).
        cfg: the method config (stage, groups, learning rates, stage 1.5 settings).
        rank: this process's rank (decorrelates masking draws across ranks); default from the process group.
    """

    replicated = ("model",)

    def __init__(self, model: CrocModel, cfg: CrocMethodConfig, rank: int | None = None) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.rank = rank_world()[0] if rank is None else rank
        self.attention = cfg.attention_mode()
        self.trained = cfg.trained_groups()
        if cfg.uses_pool and (model.pool is None or model.recon_head is None):
            raise ValueError("stage 1.5 needs a model built with a prompt pool and a reconstruction head")
        self.matcher = PoolMatcher(cfg.matching, cfg.match_threads) if cfg.uses_pool else None
        for name, module in self.groups().items():
            for p in module.parameters():
                p.requires_grad_(name in self.trained)

    def train(self, mode: bool = True) -> CrocTask:
        """Set training mode; a frozen vision encoder stays in eval mode (no dropout, fixed norms)."""
        super().train(mode)
        if "vision" not in self.trained:
            self.croc.vision.eval()
        return self

    @property
    def croc(self) -> CrocModel:
        """The Croc model without its DDP wrapper."""
        return self.module("model")

    def groups(self) -> dict[str, nn.Module]:
        """Parameter group name -> module (only the parts the model has)."""
        m = self.croc
        parts = {"vision": m.vision, "projector": m.projector, "lm": m.lm, "pool": m.pool,
                 "recon_head": m.recon_head}
        return {k: v for k, v in parts.items() if v is not None and k in GROUPS}

    def param_groups(self, weight_decay: float = 0.0) -> list[dict]:
        """AdamW groups per trained part, each with its own ``lr`` (and ``lr_scale``, its ratio to
        the largest), split into decayed matrices and undecayed gains, biases and pool/embedding rows.

        Args:
            weight_decay: decay of the matrices.
        """
        peak = max(self.cfg.group_lr(g) for g in self.trained)
        out = []
        for name, module in self.groups().items():
            params = [p for p in module.parameters() if p.requires_grad]
            if name not in self.trained or not params:
                continue
            lr = self.cfg.group_lr(name)
            decay = [p for p in params if p.ndim >= 2 and name != "pool"]
            rest = [p for p in params if not (p.ndim >= 2 and name != "pool")]
            for group, wd in ((decay, weight_decay), (rest, 0.0)):
                if group:
                    out.append({"params": group, "lr": lr, "lr_scale": lr / peak, "weight_decay": wd,
                                "name": name})
        return out

    def _mask_positions(self, batch: int, device: torch.device) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(int(self.cfg.seed) * 1_000_003 + self.rank * 7_919 + int(self.croc.step.item()))
        return random_mask(batch, self.croc.num_visual_tokens, self.cfg.mask_ratio, g, device)

    def training_forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses of one batch: ``loss`` (total), ``ce`` and, in stage 1.5, ``recon``.

        Args:
            batch: from :func:`regionset.training.croc.sequence.collate_sequences`, on the model's device.
        """
        images = batch["images"]
        positions = self._mask_positions(images.shape[0], images.device) if self.cfg.uses_pool else None
        out = self.model(images, batch["input_ids"], batch["image_mask"], batch["answer_mask"],
                         batch["padding_mask"], attention=self.attention, mask_positions=positions,
                         matcher=self.matcher, train_vision="vision" in self.trained)
        losses = {"ce": caption_ce(out["logits"], batch["labels"][:, out["logits_offset"]:])}
        if "recon" in out:
            losses["recon"] = reconstruction_loss(out["recon"], out["target"], self.cfg.recon_beta)
            losses["loss"] = losses["ce"] + self.cfg.recon_weight * losses["recon"]
        else:
            losses["loss"] = losses["ce"]
        if self.training:
            self.croc.step += 1
        return losses

    @property
    def timings(self) -> dict[str, float]:
        """Wall time of the last forward's parts (vision, matching, LM forward)."""
        return dict(self.croc.timings)
