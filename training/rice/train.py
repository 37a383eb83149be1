"""RICE training entry: YAML config -> stream the train shards -> shared loop -> export.

``run(config_path, overrides)`` is what ``regionset train rice CONFIG.yaml`` and
``torchrun --nproc-per-node G -m regionset.training.rice CONFIG.yaml`` call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch

from regionset.common.typed_config import load_config, to_dict
from regionset.training.data import ShardStream, StreamLoader
from regionset.training.distributed import init_from_env
from regionset.training.loop import LoopConfig, train
from regionset.training.rice.model import ModelConfig, vit_shape
from regionset.training.rice.regions import RegionTransform, collate_regions
from regionset.training.rice.task import LossConfig, RiceTask, scan_num_classes


@dataclass(frozen=True)
class RiceDataConfig:
    """Input settings.

    Args:
        train_dir: the build's output folder (or its ``train`` sub-folder).
        batch_size: images per rank per step.
        num_workers: DataLoader workers per rank.
        num_regions: N regions per image.
        num_tokens: M token ids per text region.
        num_image_classes: object clusters kept per image as CLS positives.
        seed: stream seed.
    """

    train_dir: str = "out"
    batch_size: int = 32
    num_workers: int = 2
    num_regions: int = 10
    num_tokens: int = 10
    num_image_classes: int = 10
    seed: int = 0


@dataclass(frozen=True)
class RiceConfig:
    """A RICE training run (one YAML file; sections data, model, loss, loop).

    Args:
        data: input settings.
        model: ViT settings.
        loss: loss settings.
        loop: optimisation and bookkeeping.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: model initialisation seed.
        export: write an open_clip-loadable trunk to ``loop.out_dir/export`` at the end.
    """

    data: RiceDataConfig = field(default_factory=RiceDataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(out_dir="runs/rice"))
    device: str = "auto"
    seed: int = 0
    export: bool = True


def build_loader(cfg: RiceConfig, epochs: int | None = None) -> StreamLoader:
    """The region-sampling stream of ``cfg`` for this rank.

    Args:
        cfg: the run config.
        epochs: limit the stream (None: forever, as in training).
    """
    shape = vit_shape(cfg.model)
    d = cfg.data
    transform = RegionTransform(shape["image_size"], shape["patch_size"], d.num_regions, d.num_tokens,
                                d.num_image_classes)
    stream = ShardStream(d.train_dir, transform, collate_regions, d.batch_size, seed=d.seed, epochs=epochs)
    return StreamLoader(stream, num_workers=d.num_workers, pin_memory=torch.cuda.is_available())


def run(config_path: str | None, overrides: list[str] | None = None) -> dict:
    """Train RICE as configured; returns the loop's summary (plus ``export`` folder if written).

    Args:
        config_path: YAML file (None: defaults).
        overrides: ``section.key=value`` items.
    """
    cfg = load_config(RiceConfig, config_path, overrides)
    device, rank, _ = init_from_env(cfg.device)
    if cfg.loss.num_classes <= 0:
        cfg = replace(cfg, loss=replace(cfg.loss, num_classes=scan_num_classes(cfg.data.train_dir)))
    torch.manual_seed(cfg.seed)
    task = RiceTask(cfg.model, cfg.loss, seed=cfg.seed)
    summary = train(task, build_loader(cfg), cfg.loop, device, meta={"kind": "rice", "config": to_dict(cfg)})
    if cfg.export and rank == 0:
        from regionset.training.rice.export import export_trunk

        summary["export"] = export_trunk(task.module("model"), os.path.join(cfg.loop.out_dir, "export"))
    return summary
