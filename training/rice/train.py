"""RICE training entry: YAML config -> stream the train shards -> shared loop -> export.

``run(config_path, overrides)`` is what ``regionset train rice CONFIG.yaml`` and
``torchrun --nproc-per-node G -m regionset.training.rice CONFIG.yaml`` call.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace

import torch

from regionset.common.storage import is_remote
from regionset.common.typed_config import load_config, to_dict
from regionset.training.data import ShardStream, StreamLoader
from regionset.training.distributed import decide_on_rank0, init_from_env
from regionset.training.dry_run import describe_run
from regionset.training.lineage import config_hash, data_lineage
from regionset.training.loop import LoopConfig, resume_point, train
from regionset.training.rice.model import ModelConfig, vit_shape
from regionset.training.rice.regions import RegionTransform, collate_regions
from regionset.training.rice.task import LossConfig, RiceTask, scan_num_classes
from regionset.training.run_files import run_path, upload_folder


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
        build_run: the build run whose shards these are, named in the checkpoints' lineage (its run
            record must exist; the training DAG sets it from the asset event); empty: the newest run.
    """

    train_dir: str = "out"
    batch_size: int = 32
    num_workers: int = 2
    num_regions: int = 10
    num_tokens: int = 10
    num_image_classes: int = 10
    seed: int = 0
    build_run: str = ""


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


def run(config_path: str | None, overrides: list[str] | None = None, dry_run: bool = False) -> dict:
    """Train RICE as configured; returns the loop's summary (plus ``export`` folder if written).

    Rank 0 lists the shards, reads their footers and counts the classes once; every rank gets
    the result by broadcast. Every checkpoint carries the data's lineage.

    Args:
        config_path: YAML file (None: defaults).
        overrides: ``section.key=value`` items.
        dry_run: print what would be trained on and resumed from (lineage), and train nothing.
    """
    cfg = load_config(RiceConfig, config_path, overrides)
    if dry_run:
        return describe_run("rice", to_dict(cfg), cfg.data.train_dir, cfg.loop, cfg.data.build_run)
    device, rank, _ = init_from_env(cfg.device)
    loader = build_loader(cfg)  # the shard view: listed by rank 0, broadcast
    view = loader.dataset.view()
    decision = resume_point(cfg.loop)  # rank 0 decides once; every rank gets step, positions, shards
    if cfg.loss.num_classes <= 0:  # a resumed run keeps its checkpoint's K (no rescan, no shape change)
        saved_k = int(decision[1]["config"]["loss"]["num_classes"]) if decision[1] else 0
        classes = saved_k or decide_on_rank0(lambda: scan_num_classes(view.paths), "counting the classes of the shards")
        cfg = replace(cfg, loss=replace(cfg.loss, num_classes=classes))
    torch.manual_seed(cfg.seed)
    task = RiceTask(cfg.model, cfg.loss, seed=cfg.seed)
    meta = {"kind": "rice", "config": to_dict(cfg), "config_hash": config_hash(to_dict(cfg))}
    if rank == 0:  # only rank 0 writes meta.json
        meta["lineage"] = data_lineage(view.paths, view.rows, cfg.data.build_run)
    summary = train(task, loader, cfg.loop, device, meta=meta, decision=decision)
    if cfg.export and rank == 0:
        summary["export"] = _export(task, cfg.loop.out_dir)
    return summary


def _export(task: RiceTask, out_dir: str) -> str:
    """Write the export to ``out_dir/export`` (a local folder, or objects via a local temp folder)."""
    from regionset.training.rice.export import export_trunk

    dest = run_path(out_dir, "export")
    if not is_remote(dest):
        return export_trunk(task.module("model"), str(dest))
    with tempfile.TemporaryDirectory(prefix="rice-export-") as tmp:
        upload_folder(export_trunk(task.module("model"), tmp), dest)
    return str(dest)
