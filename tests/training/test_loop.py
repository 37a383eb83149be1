"""Shared loop pieces: LR schedule, clipping over replicated + sharded parameters, typed config."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from training.config import ConfigError, from_dict, load_config
from training.loop import LoopConfig, clip_gradients, lr_factor
from training.task import TrainTask, batch_size, move_batch


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
