"""Shared loop pieces: LR schedule, clipping over replicated + sharded parameters, typed config."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from regionset.common.typed_config import ConfigError, from_dict, load_config
from regionset.training.loop import LoopConfig, clip_gradients, lr_factor
from regionset.training.task import TrainTask, batch_size, move_batch


class FakeTask(TrainTask):
    replicated = ("model",)
    sharded = ("centres",)

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Linear(3, 2)
        self.centres = torch.nn.Linear(2, 4, bias=False)


def test_warmup_then_cosine():
    cfg = LoopConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(110, cfg) == pytest.approx(0.1)
    assert lr_factor(60, cfg) == pytest.approx(0.55)


def test_clip_counts_every_parameter_and_groups_skip_decay_for_vectors():
    task = FakeTask()
    for p in task.parameters():
        p.grad = torch.full_like(p, 2.0)
    n = sum(p.numel() for p in task.parameters())
    norm = clip_gradients(task, max_norm=1.0)
    assert float(norm) == pytest.approx(2.0 * n**0.5)
    total = sum(float(p.grad.pow(2).sum()) for p in task.parameters()) ** 0.5
    assert total == pytest.approx(1.0, rel=1e-4)
    decay, no_decay = task.param_groups(0.2)
    assert len(decay["params"]) == 2 and len(no_decay["params"]) == 1 and no_decay["weight_decay"] == 0.0
    batch = move_batch({"x": torch.zeros(5, 2), "key": ["a"] * 5}, torch.device("cpu"))
    assert batch_size(batch) == 5


@dataclass(frozen=True)
class _Inner:
    lr: float = 0.1
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    mode: str = "a"


def test_typed_config_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  lr: 1\n  names: [x]\n")
    cfg = load_config(_Outer, path, ["mode=b", "inner.lr=0.5"])
    assert cfg == _Outer(_Inner(0.5, ["x"]), "b")
    with pytest.raises(ConfigError, match="inner.lrr"):
        from_dict(_Outer, {"inner": {"lrr": 1}})
    with pytest.raises(ConfigError, match="inner.lr: expected float"):
        from_dict(_Outer, {"inner": {"lr": "fast"}})


class FakeTwoRateTask(TrainTask):
    """Two parameter groups with their own peak learning rates (as Croc's stage 1.5 has)."""

    replicated = ("fast", "slow")

    def __init__(self):
        super().__init__()
        self.fast = torch.nn.Linear(4, 1, bias=False)
        self.slow = torch.nn.Linear(4, 1, bias=False)

    def param_groups(self, weight_decay):
        return [{"params": list(self.fast.parameters()), "lr": 0.1, "weight_decay": 0.0},
                {"params": list(self.slow.parameters()), "lr": 0.001, "weight_decay": 0.0}]

    def training_forward(self, batch):
        x = batch["x"]
        return {"loss": (self.fast(x) + self.slow(x)).pow(2).mean()}


class FakeLoader(list):
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_loop_honours_per_group_peak_lrs(tmp_path):
    from regionset.training.loop import train

    torch.manual_seed(0)
    task = FakeTwoRateTask()
    before = {n: p.detach().clone() for n, p in task.named_parameters()}
    cfg = LoopConfig(steps=1, warmup_steps=0, lr=0.5, out_dir=str(tmp_path), log_every=1, save_every=0)
    train(task, FakeLoader([{"x": torch.randn(8, 4)}]), cfg, torch.device("cpu"))
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in task.named_parameters()}
    # Adam's first step moves each weight by about its group's lr (not loop.lr = 0.5)
    assert moved["fast.weight"] == pytest.approx(0.1, rel=0.05)
    assert moved["slow.weight"] == pytest.approx(0.001, rel=0.05)
