"""PartialFCLoss against a direct dense reference; gradients by gradcheck; Partial FC sampling."""

from __future__ import annotations

import math

import pytest
import torch

from regionset.training.rice.loss import PartialFCLoss, apply_margin, shard_range

torch.set_num_threads(1)


def dense_reference(feats, centres, labels, s, m, kind):
    """Direct per-row evaluation of L = log(1 + Σ_P e^{-s φ(cos)}) + log(1 + Σ_Q e^{s cos})."""
    f = feats / feats.norm(dim=1, keepdim=True)
    c = centres / centres.norm(dim=1, keepdim=True)
    total, rows = feats.new_zeros(()), 0
    for i in range(len(f)):
        positives = {int(y) for y in labels[i] if y >= 0}
        if not positives:
            continue
        pos_sum, neg_sum = feats.new_zeros(()), feats.new_zeros(())
        for j in range(len(c)):
            cos = (f[i] * c[j]).sum()
            if j in positives:
                if kind == "additive-cosine":
                    phi = cos - m
                else:
                    theta = torch.acos(cos)
                    phi = torch.cos(theta + m) if theta + m < math.pi else cos - math.sin(math.pi - m) * m
                pos_sum = pos_sum + torch.exp(-s * phi)
            else:
                neg_sum = neg_sum + torch.exp(s * cos)
        total = total + torch.log1p(pos_sum) + torch.log1p(neg_sum)
        rows += 1
    return total / rows


def _case(seed=0, b=6, k=9, d=5, p=3):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (b, p), generator=g)
    labels[:, 1:][torch.rand(b, p - 1, generator=g) < 0.5] = -1  # multi-label rows and single-label rows
    labels[0] = -1  # a row without labels is ignored
    labels[1] = torch.tensor([0, -1, 0][:p])  # class 0 beside padding, and a repeated positive
    return feats, labels


@pytest.mark.parametrize("kind", ["additive-cosine", "angular"])
def test_rho_one_equals_dense_reference(kind):
    feats, labels = _case()
    loss_fn = PartialFCLoss(9, 5, sample_rate=1.0, margin=0.3, scale=64.0, margin_type=kind, form="paper").double()
    loss, count = loss_fn(feats, labels).mean()
    ref = dense_reference(feats, loss_fn.weight.detach(), labels, 64.0, 0.3, kind)
    assert int(count) == 5
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=0.0)  # float64 rounding only


@pytest.mark.parametrize("kind", ["additive-cosine", "angular"])
def test_gradcheck_float64(kind):
    feats, labels = _case(seed=1, b=4, k=5, d=3)
    loss_fn = PartialFCLoss(5, 3, sample_rate=1.0, margin=0.3, scale=8.0, margin_type=kind, form="paper").double()

    def loss(x, w):
        return torch.func.functional_call(loss_fn, {"weight": w}, (x, labels)).mean()[0]

    x = feats.clone().requires_grad_(True)
    w = loss_fn.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (x, w))
    gx, gw = torch.autograd.grad(loss(x, w), (x, w))
    rx, rw = torch.autograd.grad(dense_reference(x, w, labels, 8.0, 0.3, kind), (x, w))
    torch.testing.assert_close((gx, gw), (rx, rw))


def test_partial_fc_keeps_positives_and_samples_rho():
    torch.manual_seed(0)
    loss_fn = PartialFCLoss(1000, 8, sample_rate=0.1, form="paper")
    labels = torch.tensor([[3, -1], [999, 500], [3, 7]])
    index = loss_fn.sample(labels)
    assert len(index) == 100 and {3, 7, 500, 999} <= set(index.tolist())
    assert torch.all(index[1:] > index[:-1])
    feats = torch.randn(3, 8)
    sampled, _ = loss_fn(feats, labels).mean()
    loss_fn.sample_rate = 1.0
    dense, _ = loss_fn(feats, labels).mean()
    assert sampled < dense  # fewer negatives, same positives


def test_margin_and_shards():
    cos = torch.tensor([0.5, -0.99])
    torch.testing.assert_close(apply_margin(cos, 0.3, "additive-cosine"), cos - 0.3)
    assert apply_margin(cos, 0.3, "angular")[0] == pytest.approx(math.cos(math.acos(0.5) + 0.3))
    ranges = [shard_range(10, r, 3) for r in range(3)]
    assert ranges == [(0, 4), (4, 7), (7, 10)]


def test_label_out_of_range_names_the_setting():
    loss_fn = PartialFCLoss(4, 3, sample_rate=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        loss_fn(torch.randn(2, 3), torch.tensor([[1], [4]]))
