"""Croc training entry: YAML config -> tokenizer, model, stream -> the shared loop.

``run(config_path, overrides)`` is what ``regionset train croc CONFIG.yaml``,
``python -m regionset.training.croc CONFIG.yaml`` and ``torchrun --nproc-per-node G -m regionset.training.croc
CONFIG.yaml`` call. Stages 1, 1.5 and 2 are configs of this one entry (``method.stage``); chain
them with ``method.init_from`` pointing at the previous stage's run folder.
"""

from __future__ import annotations

import torch

from regionset.common.typed_config import load_config, to_dict
from regionset.training.croc.build import build_croc, build_stream
from regionset.training.croc.config import CrocConfig
from regionset.training.data import StreamLoader
from regionset.training.distributed import init_from_env, rank0_first
from regionset.training.dry_run import describe_run
from regionset.training.lineage import config_hash, data_lineage
from regionset.training.loop import train


def build_run(cfg: CrocConfig, rank: int = 0, epochs: int | None = None):
    """Tokenizer, task and loader of a run (rank 0 makes a ``bpe`` tokenizer, the others load it).

    Args:
        cfg: the run config.
        rank: this process's rank.
        epochs: limit the stream (None: forever, as in training).

    Returns:
        (task, tokenizer, loader).
    """
    run_dir = cfg.loop.out_dir
    # rank 0 builds the tokenizer once and writes run_dir/tokenizer.json (on the run's storage, next
    # to checkpoints/); the other ranks wait, then read that file
    built = rank0_first(lambda: build_croc(cfg, run_dir, rank=0), "building the Croc tokenizer")
    task, tokenizer = built if rank == 0 else build_croc(cfg, run_dir, rank=rank)
    stream = build_stream(cfg, task, tokenizer, epochs=epochs)
    loader = StreamLoader(stream, num_workers=cfg.data.num_workers, pin_memory=torch.cuda.is_available())
    return task, tokenizer, loader


def run(config_path: str | None, overrides: list[str] | None = None, dry_run: bool = False) -> dict:
    """Train Croc as configured; returns the loop's summary.

    Args:
        config_path: YAML file (None: defaults).
        overrides: ``section.key=value`` items.
        dry_run: print what would be trained on and resumed from (lineage), and train nothing.
    """
    cfg = load_config(CrocConfig, config_path, overrides)
    if dry_run:
        return describe_run("croc", to_dict(cfg), cfg.data.train_dir, cfg.loop, cfg.data.build_run)
    device, rank, _ = init_from_env(cfg.device)
    torch.manual_seed(cfg.seed)
    task, _, loader = build_run(cfg, rank)
    meta = {"kind": "croc", "stage": cfg.method.stage, "num_visual_tokens": task.croc.num_visual_tokens,
            "config": to_dict(cfg), "config_hash": config_hash(to_dict(cfg))}
    if rank == 0:  # only rank 0 writes meta.json
        view = loader.dataset.view()
        meta["lineage"] = data_lineage(view.paths, view.rows, cfg.data.build_run)
    try:
        return train(task, loader, cfg.loop, device, meta=meta)
    finally:
        if task.matcher is not None:
            task.matcher.close()
