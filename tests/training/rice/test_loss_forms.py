"""Loss forms x multi-label policies x inter-class filter against the float64 reference, in three regimes."""

from __future__ import annotations

import math

import pytest
import torch

from regionset.training.rice.loss import PartialFCLoss, subset_labels, unique_labels
from tests.training.rice.loss_reference import reference_loss

torch.set_num_threads(1)
K, D = 9, 64
FORMS = [(f, ml) for f in ("paper", "softmax") for ml in ("joint", "per_label")]


def regime_case(target_cos: float | None, seed: int = 0, b: int = 5, p: int = 3, labels=None):
    """Features whose cosine to each row's first label's centre is ``target_cos`` (None: random, ~0)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, D, generator=g, dtype=torch.float64) * 0.01
    if labels is None:
        labels = torch.randint(0, K, (b, p), generator=g)
        labels[:, 1:][torch.rand(b, p - 1, generator=g) < 0.4] = -1
        labels[0] = torch.tensor([2, 2, -1])  # a repeated positive counts once
    noise = torch.randn(b, D, generator=g, dtype=torch.float64)
    if target_cos is None:
        return noise, centres, labels
    u = centres[labels[:, 0]] / centres[labels[:, 0]].norm(dim=1, keepdim=True)
    v = noise - (noise * u).sum(1, keepdim=True) * u
    v = v / v.norm(dim=1, keepdim=True)
    return target_cos * u + math.sqrt(1 - target_cos**2) * v, centres, labels


def _module(form, multilabel, scale=64.0, **kw):
    loss_fn = PartialFCLoss(K, D, sample_rate=1.0, scale=scale, form=form, multilabel=multilabel, **kw).double()
    return loss_fn


def _value_and_grads(loss_fn, feats, centres, labels):
    x, w = feats.clone().requires_grad_(True), centres.clone().requires_grad_(True)
    loss = torch.func.functional_call(loss_fn, {"weight": w}, (x, labels)).mean()[0]
    return (loss, *torch.autograd.grad(loss, (x, w)))


def _reference_value_and_grads(feats, centres, labels, **kw):
    x, w = feats.clone().requires_grad_(True), centres.clone().requires_grad_(True)
    loss = reference_loss(x, w, labels, **kw)
    return (loss, *torch.autograd.grad(loss, (x, w)))


@pytest.mark.parametrize("target_cos", [None, 0.4, 0.8], ids=["init", "mid", "trained"])
@pytest.mark.parametrize("form,multilabel", FORMS)
@pytest.mark.parametrize("kind", ["additive-cosine", "angular"])
def test_forms_match_reference_values_and_grads(form, multilabel, target_cos, kind):
    feats, centres, labels = regime_case(target_cos)
    got = _value_and_grads(_module(form, multilabel, margin_type=kind), feats, centres, labels)
    want = _reference_value_and_grads(feats, centres, labels, form=form, multilabel=multilabel, kind=kind)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)  # float64; gradients reach ~100


def test_regimes_separate_the_forms():
    """Equal at init up to the softplus split; the softmax form saturates once trained, the paper's does not."""
    values = {}
    for regime in (None, 0.4, 0.8):
        feats, centres, labels = regime_case(regime, b=5)
        labels[:, 1:] = -1  # single-label rows: the two forms differ only in how they combine
        values[regime] = {f: _value_and_grads(_module(f, "joint"), feats, centres, labels)[0].item()
                          for f in ("paper", "softmax")}
    assert values[0.8]["softmax"] < 1e-6 < 1.0 < values[0.8]["paper"]
    assert values[None]["softmax"] > 1.0 and values[0.4]["softmax"] < values[0.4]["paper"]


@pytest.mark.parametrize("form,multilabel", FORMS)
@pytest.mark.parametrize("ref", ["feature", "centre"])
def test_interclass_filter_matches_reference(form, multilabel, ref):
    feats, centres, labels = regime_case(0.6, seed=3)
    centres[5] = centres[labels[1, 0]] + 0.003 * torch.randn(D, dtype=torch.float64)  # a near-duplicate centre
    kw = dict(interclass_filter=0.5, interclass_ref=ref)
    got = _value_and_grads(_module(form, multilabel, scale=16.0, **kw), feats, centres, labels)
    want = _reference_value_and_grads(feats, centres, labels, form=form, multilabel=multilabel, s=16.0,
                                      filt=0.5, ref=ref)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)  # float64; gradients reach ~100


@pytest.mark.parametrize("ref", ["feature", "centre"])
def test_filter_removes_exactly_the_centres_above_threshold(ref):
    feats, centres, labels = regime_case(0.7, seed=4, labels=torch.tensor([[1, -1, -1]]))
    centres[6] = centres[1] + 0.002 * torch.randn(D, dtype=torch.float64)  # cos(c6, c1) ≈ 0.99; cos(f, c6) ≈ 0.7
    f, c = feats[0] / feats[0].norm(), centres / centres.norm(dim=1, keepdim=True)
    near = (c @ f if ref == "feature" else c @ c[1]) > 0.5
    near[1] = False  # the target is never filtered
    assert near[6] and near.sum() >= 1
    _, _, gw = _value_and_grads(_module("softmax", "joint", interclass_filter=0.5, interclass_ref=ref),
                                feats, centres, labels)
    _, _, gw_off = _value_and_grads(_module("softmax", "joint"), feats, centres, labels)
    moved = gw.abs().sum(1) > 0
    assert torch.equal(moved, ~near)  # filtered centres get no gradient; every other drawn centre does
    assert torch.all(gw_off.abs().sum(1) > 0)


def _recording_draws(loss_fn, monkeypatch):
    draws, sample = [], loss_fn.sample

    def record(targets):
        index = sample(targets)
        draws.append(index.tolist())
        return index

    monkeypatch.setattr(loss_fn, "sample", record)
    return draws


@pytest.mark.parametrize("form,multilabel", FORMS)
def test_partial_fc_draws_match_reference(form, multilabel, monkeypatch):
    feats, centres, labels = regime_case(0.4, seed=5, b=4)
    loss_fn = PartialFCLoss(K, D, sample_rate=0.5, form=form, multilabel=multilabel, scale=16.0).double()
    draws = _recording_draws(loss_fn, monkeypatch)
    got = _value_and_grads(loss_fn, feats, centres, labels)
    cols = unique_labels(labels)
    used = [c for c in range(cols.shape[1]) if (cols[:, c] >= 0).any()] if multilabel == "per_label" else [0]
    by_column = dict(zip(used, draws))
    want = _reference_value_and_grads(feats, centres, labels, form=form, multilabel=multilabel, s=16.0,
                                      draws=by_column)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)  # float64; gradients reach ~100


def test_per_label_draws_are_independent(monkeypatch):
    torch.manual_seed(0)
    loss_fn = PartialFCLoss(2000, 8, sample_rate=0.1, form="softmax", multilabel="per_label")
    labels = torch.tensor([[3, 700, 1500], [10, 700, -1]])
    draws = _recording_draws(loss_fn, monkeypatch)
    loss_fn(torch.randn(2, 8), labels)
    assert len(draws) == 3  # one draw per label column
    columns = unique_labels(labels).t().tolist()
    for draw, col in zip(draws, columns):
        assert {y for y in col if y >= 0} <= set(draw) and len(draw) == 200
    overlap = len(set(draws[0]) & set(draws[1])) / 200
    assert overlap < 0.3  # independent draws overlap ~ρ = 0.1, not 1
    assert 700 not in draws[0] or 700 in columns[0]  # a column draw keeps only its own positives for sure


@pytest.mark.parametrize("rounding,expected", [("floor", 9), ("ceil", 10)])
def test_budget_rounding_and_positives_kept(rounding, expected):
    torch.manual_seed(0)
    loss_fn = PartialFCLoss(95, 4, sample_rate=0.1, budget_rounding=rounding)  # ρ·K = 9.5
    assert loss_fn.budget() == expected
    few = loss_fn.sample(torch.tensor([[3, 50, -1]]))
    assert len(few) == expected and {3, 50} <= set(few.tolist())
    many = torch.arange(0, 60, 5)[None]  # 12 positives > budget: all positives, nothing else
    assert loss_fn.sample(many).tolist() == many[0].tolist()


def test_subset_labels_keeps_real_labels_first():
    torch.manual_seed(0)
    labels = torch.tensor([[5, -1, 7, -1, 9], [1, 2, 3, 4, 6], [-1, -1, -1, -1, 8]])
    seen = set()
    for _ in range(20):
        kept = subset_labels(labels, 3)
        assert set(kept[0].tolist()) == {5, 7, 9} and set(kept[2].tolist()) == {8, -1}
        assert len(set(kept[1].tolist())) == 3 and set(kept[1].tolist()) <= {1, 2, 3, 4, 6}
        seen.add(tuple(sorted(kept[1].tolist())))
    assert len(seen) > 3  # a fresh random subset per call
    assert subset_labels(labels, 0) is labels


def test_config_reaches_both_banks_and_bad_values_name_the_key():
    from regionset.common.typed_config import ConfigError, load_config
    from regionset.training.rice.model import ModelConfig
    from regionset.training.rice.task import LossConfig, RiceTask
    from regionset.training.rice.train import RiceConfig

    cfg = LossConfig(num_classes=12, num_tokens=16, form="paper", multilabel="per_label", labels_per_sample=3,
                     interclass_filter=0.75, interclass_ref="centre", budget_rounding="ceil")
    task = RiceTask(ModelConfig(name="nano"), cfg)
    for bank in (task.object_centres, task.token_centres):
        assert (bank.form, bank.multilabel, bank.labels_per_sample) == ("paper", "per_label", 3)
        assert (bank.interclass_filter, bank.interclass_ref, bank.budget_rounding) == (0.75, "centre", "ceil")
    with pytest.raises(ConfigError, match="loss.form"):
        load_config(RiceConfig, None, ["loss.form=arcface"])
