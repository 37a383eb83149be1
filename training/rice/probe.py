"""Linear probe of region embeddings: how much object-class information a RICE model's regions carry.

Used by the slow learning test and by ``bench/train_rice.py`` to compare loss forms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionset.training.data import ShardStream, StreamLoader
from regionset.training.rice.model import RiceViT, vit_shape
from regionset.training.rice.regions import RegionTransform, collate_regions


def region_probe(model: RiceViT, probe_dir: str, num_classes: int, regions: int = 4) -> float:
    """Held-out accuracy of a ridge classifier on object-region embeddings (first half fits).

    Args:
        model: the model to probe (put in eval mode).
        probe_dir: ``train`` shards with object regions.
        num_classes: number of object classes in ``probe_dir``.
        regions: regions sampled per image.
    """
    shape = vit_shape(model.cfg)
    transform = RegionTransform(shape["image_size"], shape["patch_size"], regions, regions, regions)
    xs, ys = [], []
    stream = ShardStream(probe_dir, transform, collate_regions, 32, epochs=1, shuffle=False)
    with torch.no_grad():
        for b in StreamLoader(stream, num_workers=0):
            _, feats = model.eval()(b["image"], b["token_mask"])
            keep = b["region_valid"] & ~b["is_text"]
            xs.append(feats[keep])
            ys.append(b["class_ids"][keep])
    x, y = F.normalize(torch.cat(xs), dim=1), torch.cat(ys)
    x = torch.cat([x, torch.ones(len(x), 1)], 1)
    n = len(x) // 2
    target = F.one_hot(y, num_classes).float()
    w = torch.linalg.solve(x[:n].T @ x[:n] + 1e-2 * torch.eye(x.shape[1]), x[:n].T @ target[:n])
    return float(((x[n:] @ w).argmax(1) == y[n:]).float().mean())
