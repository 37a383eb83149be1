"""The RICE task: region and CLS embeddings -> region cluster discrimination over sharded centres.

Object regions (one leaf cluster each) and the image's CLS embedding (positives: the image's object
clusters, multi-label) share the object-centre bank, in one call so they share the step's Partial
FC sample; text regions (positives: up to M token ids) use the token-centre bank. Total loss =
``object_weight · L_obj + text_weight · L_text + cls_weight · L_cls``, each a mean over the global
batch's rows that have a positive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow.compute as pc
import torch

from regionset.training.data import list_shards, read_shard
from regionset.training.distributed import rank_world
from regionset.training.rice.loss import FilterRef, LossForm, MarginType, MultiLabel, PartialFCLoss, Rounding
from regionset.training.rice.model import ModelConfig, RiceViT
from regionset.training.task import TrainTask

REGION_ROWS, CLS_ROWS = 0, 1


@dataclass(frozen=True)
class LossConfig:
    """RICE loss settings (defaults from the paper where it states them).

    Args:
        num_classes: K, the number of leaf clusters; 0 reads the largest class id in the shards + 1.
        num_tokens: OCR vocabulary size (open_clip's BPE: 49408).
        sample_rate: ρ, Partial FC fraction of centres per step.
        margin: m.
        scale: s.
        margin_type: ``additive-cosine`` or ``angular``.
        form: ``softmax`` (margin cross-entropy, the released code's) or ``paper`` (RICE Eq. 3/4).
        multilabel: ``joint`` (one draw, all positives targets) or ``per_label`` (a draw per label).
        labels_per_sample: random subset of labels kept per multi-label row (0: all).
        interclass_filter: zero negatives' logits above this cosine (0: off; released code: 0.75).
        interclass_ref: ``feature`` (cosine to the row's feature, released code) or ``centre``.
        budget_rounding: ``floor`` (released code) or ``ceil`` of ρ·K_local per rank.
        object_weight, text_weight, cls_weight: weights of the three terms.
    """

    num_classes: int = 0
    num_tokens: int = 49408
    sample_rate: float = 0.1
    margin: float = 0.3
    scale: float = 64.0
    margin_type: MarginType = "additive-cosine"
    form: LossForm = "softmax"
    multilabel: MultiLabel = "joint"
    labels_per_sample: int = 0
    interclass_filter: float = 0.0
    interclass_ref: FilterRef = "feature"
    budget_rounding: Rounding = "floor"
    object_weight: float = 1.0
    text_weight: float = 1.0
    cls_weight: float = 1.0


def scan_num_classes(shards: str | list[str]) -> int:
    """Largest object ``class_id`` in the train shards + 1 (reads only the regions column).

    Args:
        shards: a train folder, or the exact shard list to scan (the run's broadcast view).
    """
    paths = list_shards(shards) if isinstance(shards, str) else shards
    top = -1
    for shard in paths:
        regions = pc.list_flatten(read_shard(shard, columns=["regions"])["regions"])
        if len(regions):
            ids = pc.struct_field(regions, "class_id")
            top = max(top, int(pc.max(ids).as_py() if pc.max(ids).as_py() is not None else -1))
    if top < 0:
        where = os.path.abspath(shards) if isinstance(shards, str) else f"{len(paths)} shards"
        raise ValueError(f"no object class ids in {where}; set loss.num_classes")
    return top + 1


class RiceTask(TrainTask):
    """RICE model + object and token centre banks.

    Args:
        model_cfg: the ViT settings.
        loss_cfg: the loss settings; ``num_classes`` must be resolved (> 0).
        seed: seed of this rank's centre initialisation.
    """

    replicated = ("model",)
    sharded = ("object_centres", "token_centres")

    def __init__(self, model_cfg: ModelConfig, loss_cfg: LossConfig, seed: int = 0):
        super().__init__()
        if loss_cfg.num_classes <= 0:
            raise ValueError("loss.num_classes must be resolved (> 0) before building RiceTask")
        self.cfg = loss_cfg
        self.model = RiceViT(model_cfg)
        dim = self.model.output_dim
        c = loss_cfg
        kw = dict(sample_rate=c.sample_rate, margin=c.margin, scale=c.scale, margin_type=c.margin_type,
                  form=c.form, multilabel=c.multilabel, labels_per_sample=c.labels_per_sample,
                  interclass_filter=c.interclass_filter, interclass_ref=c.interclass_ref,
                  budget_rounding=c.budget_rounding)
        with torch.random.fork_rng(devices=[]):  # each rank's shard of centres differs, the trunk not
            torch.manual_seed(seed + 7919 * (1 + rank_world()[0]))
            self.object_centres = PartialFCLoss(loss_cfg.num_classes, dim, **kw)
            self.token_centres = PartialFCLoss(loss_cfg.num_tokens, dim, **kw)

    def training_forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Losses of a :func:`regionset.training.rice.regions.collate_regions` batch (on the task's device)."""
        cls, regions = self.model(batch["image"], batch["token_mask"])
        b, r, d = regions.shape
        feats = regions.reshape(b * r, d)
        valid = batch["region_valid"].reshape(-1)
        is_text = batch["is_text"].reshape(-1)
        obj = torch.where(valid & ~is_text, batch["class_ids"].reshape(-1), -1)
        image_ids = batch["image_class_ids"]
        obj_labels = torch.full((b * r, image_ids.shape[1]), -1, dtype=torch.long, device=feats.device)
        obj_labels[:, 0] = obj
        groups = torch.cat([torch.full((b * r,), REGION_ROWS), torch.full((b,), CLS_ROWS)]).to(feats.device)
        rows = self.object_centres(torch.cat([feats, cls]), torch.cat([obj_labels, image_ids.long()]), groups)
        loss_obj, n_obj = rows.mean(REGION_ROWS)
        loss_cls, n_cls = rows.mean(CLS_ROWS)
        tok = torch.where((valid & is_text)[:, None], batch["token_ids"].reshape(b * r, -1), -1)
        loss_text, n_text = self.token_centres(feats, tok).mean()
        c = self.cfg
        total = c.object_weight * loss_obj + c.text_weight * loss_text + c.cls_weight * loss_cls
        return {"loss": total, "loss_object": loss_obj.detach(), "loss_text": loss_text.detach(),
                "loss_cls": loss_cls.detach(), "object_rows": n_obj.float(), "text_rows": n_text.float()}
