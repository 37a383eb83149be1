"""The shared training loop: AdamW, warmup + cosine, bf16 autocast on GPU, clipping, logs, resume.

Task-agnostic (see :mod:`regionset.training.task`): RICE and Croc both run through :func:`train`. Under
torchrun the replicated children are wrapped in DDP (nccl on GPU, gloo on CPU); sharded children
stay per rank, and gradient clipping counts their norm across ranks.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from regionset.common.storage import is_remote
from regionset.training.checkpoint import latest_checkpoint, load_checkpoint, read_meta, save_checkpoint
from regionset.training.distributed import decide_on_rank0, is_dist, rank_world
from regionset.training.failpoint import train_failpoint
from regionset.training.run_files import append_lines, run_path
from regionset.training.shard_view import reconcile_shards
from regionset.training.task import TrainTask, batch_size, move_batch


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation and bookkeeping settings.

    Args:
        steps: optimizer steps in total.
        lr: peak learning rate (RICE: 1e-3).
        weight_decay: AdamW decay of matrices (RICE: 0.2).
        betas: AdamW betas.
        warmup_steps: linear warmup from 0 to ``lr``.
        min_lr_ratio: cosine floor as a fraction of ``lr``.
        grad_clip: max global gradient norm (0: off).
        precision: ``auto`` (bf16 autocast on GPU, fp32 on CPU), ``bf16`` or ``fp32``.
        log_every: steps between log lines.
        save_every: steps between checkpoints (0: only at the end).
        resume: continue from ``out_dir``'s latest complete checkpoint when there is one.
        out_dir: run folder or object-store prefix (``s3://…``): logs, checkpoints, export.
        follow_new_shards: on resume, append shards that appeared since the checkpoint (in name
            order, from the next epoch) instead of stopping with an error naming them.
    """

    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 100
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    log_every: int = 10
    save_every: int = 0
    resume: bool = True
    out_dir: str = "runs/train"
    follow_new_shards: bool = False


def lr_factor(step: int, cfg: LoopConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step``: linear warmup, then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def clip_gradients(task: TrainTask, max_norm: float) -> torch.Tensor:
    """Clip all gradients to a global norm; sharded parameters' share is summed over ranks."""
    rep = [p.grad for p in task.replicated_parameters() if p.grad is not None]
    sh = [p.grad for p in task.sharded_parameters() if p.grad is not None]
    dev = (rep or sh)[0].device
    sq_rep = sum((g.float().pow(2).sum() for g in rep), torch.zeros((), device=dev))
    sq_sh = sum((g.float().pow(2).sum() for g in sh), torch.zeros((), device=dev))
    if is_dist() and task.sharded:
        dist.all_reduce(sq_sh)
    norm = (sq_rep + sq_sh).sqrt()
    if max_norm > 0:
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in rep + sh:
            g.mul_(coef)
    return norm


def _wrap_ddp(task: TrainTask, device: torch.device) -> None:
    if not is_dist():
        return
    for name in task.replicated:
        module = getattr(task, name)
        if any(p.requires_grad for p in module.parameters()):
            ids = [device.index] if device.type == "cuda" else None
            setattr(task, name, DistributedDataParallel(module, device_ids=ids))


def resume_point(cfg: LoopConfig) -> tuple[str | None, dict | None]:
    """The one resume decision: rank 0 finds the latest complete checkpoint and reads its meta
    (step, every rank's data position, shard list); every rank receives the same answer.

    Args:
        cfg: loop settings (``resume``, ``out_dir``).

    Returns:
        (checkpoint folder, its meta) or (None, None) to start fresh.
    """
    def decide() -> tuple[str | None, dict | None]:
        found = latest_checkpoint(cfg.out_dir) if cfg.resume else None
        return (found, read_meta(found)) if found else (None, None)

    return decide_on_rank0(decide, f"reading the latest checkpoint of {cfg.out_dir}")


def _stream_facts(loader) -> dict:
    """The shard list the loader reads (name, rows, join epoch), for the checkpoint's meta."""
    view = getattr(getattr(loader, "dataset", None), "view", None)
    if view is None:
        return {}
    v = view()
    return {"shards": [{"name": n, "rows": r, "join_epoch": e}
                       for n, r, e in zip(v.names(), v.rows, v.join_epochs, strict=True)]}


def resume_data(loader, saved: dict, cfg: LoopConfig, where: str) -> None:
    """Put the loader at this rank's saved position, on the checkpoint's shard list (checked).

    Args:
        loader: a ``StreamLoader`` (or anything with ``load_state_dict``).
        saved: the checkpoint's meta (the same on every rank).
        cfg: loop settings (``follow_new_shards``).
        where: the checkpoint, for messages.
    """
    dataset = getattr(loader, "dataset", None)
    if saved.get("shards") is not None and hasattr(dataset, "use_view"):
        epochs = [int(p.get("epoch", 0)) for d in saved["data"] for p in d.get("positions", {}).values()]
        dataset.use_view(reconcile_shards(saved["shards"], dataset.view(), cfg.follow_new_shards,
                                          max(epochs, default=0) + 1, where))
    loader.load_state_dict(saved["data"][rank_world()[0]])


def train(task: TrainTask, loader, cfg: LoopConfig, device: torch.device, meta: dict | None = None,
          decision: tuple[str | None, dict | None] | None = None) -> dict:
    """Train ``task`` on ``loader`` for ``cfg.steps`` steps (resuming if a checkpoint exists).

    Args:
        task: the task; moved to ``device`` and DDP-wrapped here.
        loader: iterable of batches with ``state_dict``/``load_state_dict`` (a ``StreamLoader``).
        cfg: loop settings.
        device: this rank's device.
        meta: JSON-able facts saved in every checkpoint (e.g. the resolved config).
        decision: :func:`resume_point`'s answer when the caller already asked (RICE does, to take
            the class count from the checkpoint); None: asked here.

    Returns:
        Summary: steps, first/last logged losses, samples/s, history of log records.
    """
    rank, world = rank_world()
    task.to(device)
    optimizer = torch.optim.AdamW(task.param_groups(cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    for group in optimizer.param_groups:  # a task may give groups their own peak lr (Croc does)
        group["base_lr"] = group["lr"]
    step = 0
    found, saved = decision if decision is not None else resume_point(cfg)
    if found:
        load_checkpoint(found, task, optimizer, saved)
        step = int(saved["step"])
        resume_data(loader, saved, cfg, found)
        print(f"regionset train: rank {rank} of {world} resumes at step {step} from {found}", file=sys.stderr,
              flush=True)
    _wrap_ddp(task, device)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    log_path, pending = run_path(cfg.out_dir, "log.jsonl"), []
    history, parts, seen, wait = [], defaultdict(float), 0, 0.0
    t0 = tick = time.perf_counter()
    task.train()
    batches = iter(loader)
    while step < cfg.steps:
        batch = move_batch(next(batches), device)
        wait += time.perf_counter() - tick
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            losses = task.training_forward(batch)
        losses["loss"].backward()
        norm = clip_gradients(task, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        seen += batch_size(batch) * world
        for k, v in losses.items():
            parts[k] += float(v.detach())
        parts["grad_norm"] += float(norm)
        tick = time.perf_counter()
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            record = {"step": step, "lr": optimizer.param_groups[0]["lr"],
                      **{k: v / n for k, v in parts.items()},
                      "samples_per_s": seen / (tick - t0), "data_wait_frac": wait / (tick - t0)}
            history.append(record)
            if rank == 0:
                print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in record.items()}),
                      flush=True)
                pending.append(json.dumps(record))
                if not is_remote(cfg.out_dir):  # a local log grows per line; an object at checkpoints
                    append_lines(log_path, pending)
                    pending = []
            parts, seen, wait, t0 = defaultdict(float), 0, 0.0, tick
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
            save_checkpoint(cfg.out_dir, step, task, optimizer, loader.state_dict(),
                            {**(meta or {}), **_stream_facts(loader)})
            append_lines(log_path, pending)
            pending = []
            tick = time.perf_counter()
        train_failpoint(step, rank)
    loss_key = "loss"
    return {"steps": step, "history": history,
            "first_loss": history[0][loss_key] if history else None,
            "last_loss": history[-1][loss_key] if history else None,
            "samples_per_s": history[-1]["samples_per_s"] if history else None}
