"""Checkpoints as files or objects: model weights once, optimizer, RNG and shards per rank, meta JSON.

``OUT_DIR/checkpoints/step-00001000/`` holds ``model.pt`` (replicated children, rank 0),
``shard-rank{r}.pt`` (sharded children, e.g. class centres), ``optim-rank{r}.pt``,
``rng-rank{r}.pt`` (the rank's torch RNG state, so a resumed run draws what an uninterrupted one
draws), ``meta.json`` (step, world size, config, every rank's data position, lineage) and
``complete.json`` last. ``OUT_DIR`` is a local folder or an object-store prefix
(:mod:`regionset.training.run_files`).

The commit rule is the shards' (README "Object storage"): the completion object is deleted first,
every rank writes its files under their final names, all ranks meet at a barrier, then rank 0
writes ``meta.json``, then ``complete.json`` (the name and sha256 of every file), then the
``latest`` pointer. A checkpoint without ``complete.json`` is ignored on resume, whatever ``latest``
says; the newest complete one is used instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import torch
import torch.distributed as dist

from regionset.common.storage import RemotePath
from regionset.training.distributed import is_dist, rank_world
from regionset.training.run_files import (
    children,
    get_torch,
    put_bytes,
    put_torch,
    read_text_or_none,
    run_path,
)
from regionset.training.task import TrainTask

COMPLETE = "complete.json"
LATEST = "latest"
META = "meta.json"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _states(task: TrainTask, names: tuple[str, ...]) -> dict[str, dict]:
    return {n: task.module(n).state_dict() for n in names}


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _barrier() -> None:
    if is_dist():
        dist.barrier()


def save_checkpoint(out_dir: str, step: int, task: TrainTask, optimizer: torch.optim.Optimizer,
                    data_state: dict, meta: dict | None = None) -> str:
    """Save a checkpoint collectively (every rank calls it).

    Args:
        out_dir: run folder or prefix; checkpoints go to ``out_dir/checkpoints``.
        step: optimizer steps done.
        task: the task (replicated and sharded children).
        optimizer: this rank's optimizer.
        data_state: this rank's data-stream position.
        meta: extra JSON-able facts (config, lineage, ...).

    Returns:
        The checkpoint folder (a path or URL).
    """
    rank, world = rank_world()
    root = run_path(out_dir, "checkpoints")
    folder = root / f"step-{step:08d}"
    data_states = [None] * world
    if is_dist():
        dist.all_gather_object(data_states, data_state)
    else:
        data_states = [data_state]
    if rank == 0:  # a re-save of this step (after a crash) is uncommitted until its new completion object
        _unlink(folder / COMPLETE)
    _barrier()
    written = {}
    if task.sharded:
        written[f"shard-rank{rank}.pt"] = put_torch(folder / f"shard-rank{rank}.pt", _states(task, task.sharded))
    written[f"optim-rank{rank}.pt"] = put_torch(folder / f"optim-rank{rank}.pt", optimizer.state_dict())
    written[f"rng-rank{rank}.pt"] = put_torch(folder / f"rng-rank{rank}.pt", _rng_state())
    if rank == 0:
        written["model.pt"] = put_torch(folder / "model.pt", _states(task, task.replicated))
    every = [None] * world
    if is_dist():
        dist.all_gather_object(every, written)  # also the barrier: every rank's files are in place
    else:
        every = [written]
    if rank == 0:
        files = {name: sha for part in every for name, sha in part.items()}
        info = {"step": step, "world_size": world, "data": data_states, **(meta or {})}
        files[META] = put_bytes(folder / META, json.dumps(info, indent=1).encode())
        put_bytes(folder / COMPLETE, json.dumps({"step": step, "files": files}, indent=1).encode())
        put_bytes(root / LATEST, folder.name.encode())
    _barrier()
    return str(folder)


def _unlink(path: Any) -> None:
    if isinstance(path, RemotePath):
        path.unlink(missing_ok=True)
    elif os.path.exists(path):
        os.unlink(path)


def is_complete(folder: str) -> bool:
    """True when the checkpoint folder has its completion object."""
    return read_text_or_none(run_path(folder, COMPLETE)) is not None


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint of a run (a path or URL), or None.

    ``latest`` is read first; when it is missing or names a checkpoint without its completion
    object (a save that did not finish), the newest complete ``step-*`` folder is used.
    """
    root = run_path(out_dir, "checkpoints")
    pointer = (read_text_or_none(root / LATEST) or "").strip()
    steps = sorted((n for n in children(root) if _STEP_DIR.match(n)), reverse=True)
    for name in ([pointer] if pointer else []) + [n for n in steps if n != pointer]:
        folder = str(root / name)
        if is_complete(folder):
            return folder
        print(f"regionset train: ignoring {folder}: no {COMPLETE} (an unfinished save)", file=sys.stderr)
    return None


def read_meta(folder: str) -> dict:
    """The ``meta.json`` of a checkpoint folder."""
    return json.loads(run_path(folder, META).read_text())


def load_checkpoint(folder: str, task: TrainTask, optimizer: torch.optim.Optimizer | None = None,
                    meta: dict | None = None) -> dict:
    """Restore ``task`` (and ``optimizer`` and the RNG state) on this rank; returns the meta JSON.

    Args:
        folder: a checkpoint folder from :func:`save_checkpoint` (a path or URL).
        task: the task to fill (built with the same config and world size).
        optimizer: this rank's optimizer, or None for weights only.
        meta: the folder's meta JSON when already read (rank 0 broadcasts it).
    """
    rank, world = rank_world()
    meta = meta if meta is not None else read_meta(folder)
    if task.sharded and meta["world_size"] != world:
        raise ValueError(f"{folder} was saved by {meta['world_size']} ranks with sharded state; "
                         f"resume with the same number of ranks (now {world})")
    for name, state in get_torch(run_path(folder, "model.pt")).items():
        task.module(name).load_state_dict(state)
    if task.sharded:
        for name, state in get_torch(run_path(folder, f"shard-rank{rank}.pt")).items():
            task.module(name).load_state_dict(state)
    if optimizer is not None:
        optimizer.load_state_dict(get_torch(run_path(folder, f"optim-rank{rank}.pt")))
        rng = run_path(folder, f"rng-rank{rank}.pt")
        if rng.exists():  # checkpoints from before RNG states were saved have none
            state = get_torch(rng)
            torch.set_rng_state(state["cpu"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state(state["cuda"])
    return meta
