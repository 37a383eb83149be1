"""DDP on CPU: 2 gloo processes with sharded centres == 1 process on the same global batch, every loss form."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from regionset.training.rice.loss import PartialFCLoss, shard_range

K, D_IN, D, B, P = 11, 6, 5, 8, 3  # global batch B split over the ranks
FORMS = {  # every loss form and policy, with and without the inter-class filter (both references)
    "paper-joint": dict(form="paper"),
    "softmax-joint": dict(form="softmax"),
    "paper-per_label-filter": dict(form="paper", multilabel="per_label", interclass_filter=0.3),
    "softmax-per_label": dict(form="softmax", multilabel="per_label"),
    "softmax-joint-filter-centre": dict(form="softmax", interclass_filter=0.2, interclass_ref="centre"),
    "softmax-per_label-filter": dict(form="softmax", multilabel="per_label", interclass_filter=0.3),
}


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D_IN, generator=g)
    labels = torch.randint(0, K, (B, P), generator=g)
    labels[:, 1:][torch.rand(B, P - 1, generator=g) < 0.5] = -1
    trunk = torch.nn.Linear(D_IN, D)
    with torch.no_grad():
        trunk.weight.copy_(torch.randn(D, D_IN, generator=g))
        trunk.bias.copy_(torch.randn(D, generator=g))
    centres = torch.randn(K, D, generator=g)
    return x, labels, trunk, centres


def _step(rank: int, world: int, form: str):
    x, labels, trunk, centres = _problem()
    loss_fn = PartialFCLoss(K, D, sample_rate=1.0, scale=16.0, rank=rank, world_size=world, **FORMS[form])
    start, end = shard_range(K, rank, world)
    with torch.no_grad():
        loss_fn.weight.copy_(centres[start:end])
    rows = slice(rank * B // world, (rank + 1) * B // world)
    model = DistributedDataParallel(trunk) if world > 1 else trunk
    groups = (torch.arange(B) % 2)[rows]
    out = loss_fn(model(x[rows]), labels[rows], groups)
    loss = out.mean(0)[0] + 0.5 * out.mean(1)[0]
    loss.backward()
    return loss.detach(), trunk.weight.grad, trunk.bias.grad, loss_fn.weight.grad


def _worker(rank: int, world: int, store: str, out: str, form: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(_step(rank, world, form), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("form", list(FORMS))
def test_two_gloo_ranks_match_one_process(tmp_path, form):
    torch.set_num_threads(1)
    loss1, gw1, gb1, gc1 = _step(0, 1, form)
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(tmp_path), form), nprocs=2, join=True,
                       start_method="fork")  # fork: no re-import of torch per rank
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for loss, gw, gb, _ in ranks:  # every rank holds the global loss and DDP-averaged trunk grads
        torch.testing.assert_close(loss, loss1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gw, gw1, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(gb, gb1, rtol=1e-4, atol=1e-6)
    centre_grads = torch.cat([ranks[0][3], ranks[1][3]])  # shards concatenate to the full bank
    torch.testing.assert_close(centre_grads, gc1, rtol=1e-4, atol=1e-6)
