"""The released-recipe presets: point by point, their tiny twins train on CPU, and stage 1.5 under
the Croc preset matches, masks and trains as the released code does."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from torch.nn import functional as F

from regionset.common.typed_config import load_config
from regionset.training.croc.attention import allowed_pairs
from regionset.training.croc.config import CrocConfig
from regionset.training.croc.matching import PoolMatcher
from regionset.training.croc.pool import PromptTokenPool
from regionset.training.croc.train import build_run, run
from regionset.training.loop import train

from .conftest import write_caption_shards

CONFIGS = Path(__file__).resolve().parents[3] / "training" / "configs"
PRESETS = [f"{who}-released-stage{s}" for who in ("croc", "victor") for s in ("1", "1_5", "2")]
RANKS = 8  # the released runs: 8 GPUs


def load(name: str, *items: str) -> CrocConfig:
    return load_config(CrocConfig, CONFIGS / f"{name}.yaml", list(items))


def tiny(name: str, out: str, run_dir: str, *items: str) -> CrocConfig:
    return load(f"{name}-tiny", f"data.train_dir={out}", f"loop.out_dir={run_dir}", "device=cpu", *items)


@pytest.mark.parametrize("name", PRESETS)
def test_tiny_twin_carries_the_presets_recipe(name):
    full = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    twin = yaml.safe_load((CONFIGS / f"{name}-tiny.yaml").read_text())
    method = {k: v for k, v in full["method"].items() if k != "init_from"}
    assert twin["method"] == method
    assert twin["data"]["template"] == full["data"]["template"]
    assert twin["data"]["captions"]["caption"] == full["data"].get("captions", {}).get("caption", "caption")
    cfg = load(name)  # validates every key
    for group in cfg.method.trained_groups():
        assert cfg.method.group_lr(group) == method["lr"][group]  # every trained group's lr is written out


def test_croc_release_point_by_point():
    s1, s15, s2 = (load(f"croc-released-stage{s}") for s in ("1", "1_5", "2"))
    assert [c.method.group_lr("projector") for c in (s1, s15, s2)] == [1.5e-4] * 3
    assert {g: s15.method.group_lr(g) for g in ("lm", "pool", "recon_head")} == dict.fromkeys(("lm", "pool", "recon_head"), 2e-5)
    m = s15.method
    assert (m.attention_mode(), m.matching, m.pool_init, m.pool_size, m.mask_ratio) == ("prefix", "nearest", "normal", 2048, 0.75)
    assert (m.recon_weight, m.recon_beta) == (10.0, 0.01)
    assert m.recon_head_options(576) == {"heads": 8, "head_dim": 64, "layers": 1, "norm": "post", "mlp_ratio": 4.0,
                                         "dropout": 0.1, "positions": 576, "init_std": 0.02}
    assert [c.data.template for c in (s1, s15, s2)] == ["plain", "v1", "v1"]
    assert s15.data.max_length == 8192
    assert [c.data.batch_size * RANKS for c in (s1, s15, s2)] == [256, 128, 128]
    for c in (s1, s15, s2):
        assert c.loop.warmup_steps == math.ceil(0.03 * c.loop.steps)  # 3 % warm-up of one epoch
        assert (c.loop.weight_decay, c.loop.min_lr_ratio) == (0.0, 0.0)
    assert s1.method.trained_groups() == ["projector"] and s2.method.trained_groups() == ["lm", "projector"]


def test_victor_differences():
    s1, s15, s2 = (load(f"victor-released-stage{s}") for s in ("1", "1_5", "2"))
    m = s15.method
    assert (m.matching, m.attention_mode(), m.recon_layers, m.pool_init) == ("hungarian", "causal", 0, "normal")
    assert (m.group_lr("pool"), m.group_lr("vision"), m.group_lr("lm")) == (1e-3, 2e-6, 1e-5)
    assert "vision" in m.trained_groups() and "vision" in s2.method.trained_groups()
    assert s1.method.group_lr("projector") == 1e-3 and s2.method.group_lr("vision") == 2e-6


@pytest.mark.parametrize("name", PRESETS)
def test_tiny_preset_trains_on_cpu(name, tmp_path):
    out = str(tmp_path / "out")
    write_caption_shards(out, rows=8)
    items = [f"data.train_dir={out}", f"loop.out_dir={tmp_path / 'run'}", "device=cpu", "loop.steps=3", "loop.log_every=1"]
    history = run(str(CONFIGS / f"{name}-tiny.yaml"), items)["history"]
    assert len(history) == 3 and all(math.isfinite(r["loss"]) for r in history)
    assert ("recon" in history[0]) == name.endswith("1_5")


def first_matches(cfg: CrocConfig) -> tuple[torch.Tensor, dict]:
    """Pool indices matched in the first training forward of ``cfg``'s run, and that batch."""
    torch.manual_seed(cfg.seed)
    task, _, loader = build_run(cfg, 0)
    seen = []
    matcher = task.matcher

    def spy(tokens, pool):
        seen.append(matcher(tokens, pool))
        return seen[-1]

    task.matcher = spy
    batch = next(iter(loader))
    with torch.no_grad():
        task.training_forward(batch)
    matcher.close()
    return seen[0], batch


def test_nearest_against_a_normal_pool_repeats_rows_at_init(caption_out, tmp_path):
    preset, _ = first_matches(tiny("croc-released-stage1_5", caption_out, str(tmp_path / "a")))
    masked = preset.shape[1]  # 12 of 16 tokens
    assert all(len(set(row.tolist())) < masked for row in preset)  # the released pool: rows repeat
    paper = load_config(CrocConfig, CONFIGS / "croc-tiny.yaml", [f"data.train_dir={caption_out}", "device=cpu",
                                                                 f"loop.out_dir={tmp_path / 'b'}"])
    assert (paper.method.pool_init, paper.method.matching) == ("unit", "hungarian")  # the project's defaults
    defaults, _ = first_matches(paper)
    assert all(len(set(row.tolist())) == masked for row in defaults)


def test_repeats_at_vicuna_width():
    # 432 masked unit tokens of width 4096 against 2048 pool rows, as one Croc-7B image
    torch.manual_seed(0)
    tokens = F.normalize(torch.randn(1, 432, 4096), dim=-1)
    normal = PoolMatcher("nearest", 1)(tokens, PromptTokenPool(2048, 4096, "normal").weight)
    unit = PoolMatcher("hungarian", 1)(tokens, PromptTokenPool(2048, 4096, "unit").weight)
    assert len(set(normal[0].tolist())) <= 432 // 20  # a handful of short rows take every token
    assert len(set(unit[0].tolist())) == 432


def test_preset_attention_is_the_prefix_rule_cell_by_cell(caption_out, tmp_path):
    cfg = tiny("croc-released-stage1_5", caption_out, str(tmp_path / "run"))
    torch.manual_seed(cfg.seed)
    task, _, loader = build_run(cfg, 0)
    batch = next(iter(loader))
    allowed = allowed_pairs(batch["image_mask"], batch["answer_mask"], batch["padding_mask"], task.attention)
    assert task.attention == "prefix"
    labels, real = batch["labels"].tolist(), batch["padding_mask"].tolist()
    assert len({sum(r) for r in real}) > 1  # padding present
    for b in range(len(labels)):
        first = next(i for i, v in enumerate(labels[b]) if v != -100)  # the released "ignore_index"
        for q in range(len(labels[b])):
            for k in range(len(labels[b])):
                if not real[b][q]:
                    want = q == k
                elif not real[b][k]:
                    want = False
                else:
                    want = k <= q or (q < first and k < first)
                assert bool(allowed[b, q, k]) == want, (b, q, k)


def test_stage_1_5_trains_exactly_lm_projector_pool_head_at_the_presets_rates(caption_out, tmp_path):
    run_dir = str(tmp_path / "run")
    cfg = tiny("croc-released-stage1_5", caption_out, run_dir, "loop.steps=1")
    torch.manual_seed(cfg.seed)
    task, _, loader = build_run(cfg, 0)
    before = {k: v.detach().clone() for k, v in task.croc.named_parameters()}
    train(task, loader, cfg.loop, torch.device("cpu"))
    task.matcher.close()
    optim = torch.load(os.path.join(run_dir, "checkpoints", "step-00000001", "optim-rank0.pt"), weights_only=True)
    rates = {g["name"]: g["base_lr"] for g in optim["param_groups"]}
    assert rates == {"lm": 2e-5, "projector": 1.5e-4, "pool": 2e-5, "recon_head": 2e-5}
    changed: dict[str, list[bool]] = {}
    for name, p in task.croc.named_parameters():
        changed.setdefault(name.split(".")[0], []).append(not torch.equal(p.detach(), before[name]))
        assert p.requires_grad == (name.split(".")[0] != "vision"), name
    assert not any(changed["vision"])
    assert all(changed["projector"]) and all(changed["pool"]) and all(changed["recon_head"])
    assert sum(changed["lm"]) > 0.9 * len(changed["lm"])  # rows of unseen token ids get no gradient
