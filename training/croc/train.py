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
from regionset.training.distributed import init_from_env, is_dist
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
    if rank != 0 and is_dist():
        torch.distributed.barrier()  # wait for rank 0's tokenizer.json
    task, tokenizer = build_croc(cfg, run_dir, rank=rank)
    if rank == 0 and is_dist():
        torch.distributed.barrier()
    stream = build_stream(cfg, task, tokenizer, epochs=epochs)
    loader = StreamLoader(stream, num_workers=cfg.data.num_workers, pin_memory=torch.cuda.is_available())
    return task, tokenizer, loader


def run(config_path: str | None, overrides: list[str] | None = None) -> dict:
    """Train Croc as configured; returns the loop's summary.

    Args:
        config_path: YAML file (None: defaults).
        overrides: ``section.key=value`` items.
    """
    cfg = load_config(CrocConfig, config_path, overrides)
    device, rank, _ = init_from_env(cfg.device)
    torch.manual_seed(cfg.seed)
    task, _, loader = build_run(cfg, rank)
    meta = {"kind": "croc", "stage": cfg.method.stage, "num_visual_tokens": task.croc.num_visual_tokens,
            "config": to_dict(cfg)}
    try:
        return train(task, loader, cfg.loop, device, meta=meta)
    finally:
        if task.matcher is not None:
            task.matcher.close()
