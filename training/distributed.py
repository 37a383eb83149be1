"""Process-group setup (torchrun env or explicit) and the differentiable collectives the losses use.

``gather_features`` and ``all_reduce_sum`` carry the gradient conventions of a loss whose value is
the *global* mean, identical on every rank, with class centres sharded over ranks:
- ``all_reduce_sum`` (a sum over ranks of per-shard partial sums): the backward is the identity,
  because every rank back-propagates the same global loss, so d loss / d partial = d loss / d sum.
- ``gather_features``: the backward sums every rank's partial gradient for this rank's rows
  (each rank only saw its own centres) and multiplies by the world size, because DDP then
  *averages* the trunk gradients over ranks where the global loss needs their *sum*.
With one process both are identities, so 1 process and W processes give the same gradients.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """(rank, world size), or (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if is_dist() else (0, 1)


def init_from_env(device: str = "auto") -> tuple[torch.device, int, int]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), or run single-process.

    Args:
        device: ``auto`` (cuda if available), ``cpu`` or ``cuda``.

    Returns:
        (device of this rank, rank, world size). The backend is nccl on GPU and gloo on CPU.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not is_dist():
        timeout = datetime.timedelta(minutes=30)
        store, rank, size = next(dist.rendezvous("env://", timeout=timeout))
        # keys of this attempt only: under torchrun --max-restarts the agent's store outlives a failed
        # attempt, and a restarted rank must not read the dead attempt's peer addresses
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group("nccl" if use_cuda else "gloo", store=dist.PrefixStore(f"attempt-{attempt}", store),
                                rank=rank, world_size=size, timeout=timeout)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    r, w = rank_world()
    return dev, r, w


class _GatherFeatures(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        r, w = rank_world()
        ctx.rank, ctx.world, ctx.rows = r, w, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(w)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        mine = grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]
        return mine * ctx.world


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` (equal shapes) along dim 0, with the gradient rule above."""
    return _GatherFeatures.apply(x) if is_dist() else x


def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` (equal shapes) along dim 0, without gradient."""
    if not is_dist():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks of per-rank partial sums of one global quantity (identity backward)."""
    return _AllReduceSum.apply(x) if is_dist() else x


def all_reduce_max_(x: torch.Tensor) -> torch.Tensor:
    """In-place max over ranks of a tensor that needs no gradient (e.g. a log-sum-exp shift)."""
    if is_dist():
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


class Rank0Error(RuntimeError):
    """Raised on every rank when rank 0 failed to make a decision it broadcasts."""


def decide_on_rank0(decide, what: str):
    """Run ``decide()`` on rank 0 only and hand its result to every rank (one broadcast).

    A failure on rank 0 is broadcast too and raised on every rank, so no rank waits in a
    collective for an answer that never comes.

    Args:
        decide: a function with no arguments returning a picklable value.
        what: what is decided, for the error message.
    """
    return _on_rank0(decide, what, share=True)


def rank0_first(work, what: str):
    """Run ``work()`` on rank 0 while the other ranks wait; returns its result on rank 0, None elsewhere.

    Used when rank 0 writes something (a tokenizer) the others then read. Only success or rank 0's
    error is broadcast (raised on every rank), never the result.

    Args:
        work: a function with no arguments.
        what: what is done, for the error message.
    """
    return _on_rank0(work, what, share=False)


def _on_rank0(fn, what: str, share: bool):
    if not is_dist():
        return fn()
    box: list = [None]
    failure: Exception | None = None
    result = None
    if dist.get_rank() == 0:
        try:
            result = fn()
            box[0] = ("ok", result if share else None)
        except Exception as err:  # noqa: BLE001 (handed to every rank, re-raised below)
            failure, box[0] = err, ("error", f"{type(err).__name__}: {err}")
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if failure is not None:
        raise failure  # rank 0 raises its own error
    if status == "error":
        raise Rank0Error(f"{what} failed on rank 0: {value}")
    return value if share else result
