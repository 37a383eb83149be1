"""Checkpoints in the nanochat layout: model weights once, optimizer and shards per rank, meta JSON.

``OUT_DIR/checkpoints/step-00001000/`` holds ``model.pt`` (replicated children, rank 0),
``shard-rank{r}.pt`` (sharded children, e.g. class centres), ``optim-rank{r}.pt`` and
``meta.json`` (step, world size, config, every rank's data position). ``latest`` names the newest
complete one; it is written last, so a crash mid-save leaves the previous checkpoint in charge.
Everything loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.distributed as dist

from regionset.training.distributed import is_dist, rank_world
from regionset.training.task import TrainTask


def _save(obj: Any, path: str) -> None:
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def _states(task: TrainTask, names: tuple[str, ...]) -> dict[str, dict]:
    return {n: task.module(n).state_dict() for n in names}


def save_checkpoint(out_dir: str, step: int, task: TrainTask, optimizer: torch.optim.Optimizer,
                    data_state: dict, meta: dict | None = None) -> str:
    """Save a checkpoint collectively (every rank calls it).

    Args:
        out_dir: run folder; checkpoints go to ``out_dir/checkpoints``.
        step: optimizer steps done.
        task: the task (replicated and sharded children).
        optimizer: this rank's optimizer.
        data_state: this rank's data-stream position.
        meta: extra JSON-able facts (config, ...).

    Returns:
        The checkpoint folder.
    """
    rank, world = rank_world()
    root = os.path.join(out_dir, "checkpoints")
    folder = os.path.join(root, f"step-{step:08d}")
    os.makedirs(folder, exist_ok=True)
    data_states = [None] * world
    if is_dist():
        dist.all_gather_object(data_states, data_state)
    else:
        data_states = [data_state]
    if task.sharded:
        _save(_states(task, task.sharded), os.path.join(folder, f"shard-rank{rank}.pt"))
    _save(optimizer.state_dict(), os.path.join(folder, f"optim-rank{rank}.pt"))
    if rank == 0:
        _save(_states(task, task.replicated), os.path.join(folder, "model.pt"))
        info = {"step": step, "world_size": world, "data": data_states, **(meta or {})}
        with open(os.path.join(folder, "meta.json.tmp"), "w") as f:
            json.dump(info, f, indent=1)
        os.replace(os.path.join(folder, "meta.json.tmp"), os.path.join(folder, "meta.json"))
    if is_dist():
        dist.barrier()
    if rank == 0:
        with open(os.path.join(root, "latest.tmp"), "w") as f:
            f.write(os.path.basename(folder))
        os.replace(os.path.join(root, "latest.tmp"), os.path.join(root, "latest"))
    return folder


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = os.path.join(out_dir, "checkpoints", "latest")
    if not os.path.exists(pointer):
        return None
    with open(pointer) as f:
        return os.path.join(out_dir, "checkpoints", f.read().strip())


def load_checkpoint(folder: str, task: TrainTask, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore ``task`` (and ``optimizer``) on this rank; returns the meta JSON.

    Args:
        folder: a checkpoint folder from :func:`save_checkpoint`.
        task: the task to fill (built with the same config and world size).
        optimizer: this rank's optimizer, or None for weights only.
    """
    rank, world = rank_world()
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    if task.sharded and meta["world_size"] != world:
        raise ValueError(f"{folder} was saved by {meta['world_size']} ranks with sharded state; "
                         f"resume with the same number of ranks (now {world})")

    def load(name: str) -> Any:
        return torch.load(os.path.join(folder, name), map_location="cpu", weights_only=True)

    for name, state in load("model.pt").items():
        task.module(name).load_state_dict(state)
    if task.sharded:
        for name, state in load(f"shard-rank{rank}.pt").items():
            task.module(name).load_state_dict(state)
    if optimizer is not None:
        optimizer.load_state_dict(load(f"optim-rank{rank}.pt"))
    return meta
