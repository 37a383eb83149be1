"""Loss plumbing: which parameter groups each stage updates."""

from __future__ import annotations

import torch

from regionset.training.croc.build import build_croc, build_stream

from .conftest import tiny_config


def changed_groups(cfg) -> set[str]:
    torch.manual_seed(0)
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    batch = next(iter(build_stream(cfg, task, tok, epochs=1)))
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in task.groups().items()}
    opt = torch.optim.AdamW(task.param_groups(0.0))
    task.train()
    task.training_forward(batch)["loss"].backward()
    opt.step()
    if task.matcher is not None:
        task.matcher.close()
    return {name for name, m in task.groups().items()
            if any(not torch.equal(a, b) for a, b in zip(before[name], m.parameters()))}


def test_stage1_updates_only_the_projector(caption_out, tmp_path):
    assert changed_groups(tiny_config(caption_out, str(tmp_path / "r"), stage="1")) == {"projector"}


def test_stage15_updates_all_but_the_vision_encoder(caption_out, tmp_path):
    cfg = tiny_config(caption_out, str(tmp_path / "r"), stage="1.5")
    assert changed_groups(cfg) == {"lm", "projector", "pool", "recon_head"}


def test_stage2_updates_lm_and_projector(caption_out, tmp_path):
    assert changed_groups(tiny_config(caption_out, str(tmp_path / "r"), stage="2")) == {"lm", "projector"}


def test_param_groups_carry_per_group_lr(caption_out, tmp_path):
    cfg = tiny_config(caption_out, str(tmp_path / "r"), overrides=["method.lr={lm: 0.0001, pool: 0.01}"])
    task, _ = build_croc(cfg, cfg.loop.out_dir)
    lrs = {g["name"]: (g["lr"], g["lr_scale"]) for g in task.param_groups(0.1)}
    assert lrs["lm"] == (0.0001, 0.01) and lrs["pool"] == (0.01, 1.0)
    assert lrs["projector"][0] == 2e-5  # stage 1.5 default


def test_ce_on_kept_logits_equals_full_logits(caption_out, tmp_path):
    from regionset.training.croc.task import caption_ce

    cfg = tiny_config(caption_out, str(tmp_path / "r"), stage="1")
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    batch = next(iter(build_stream(cfg, task, tok, epochs=1)))
    task.eval()
    with torch.no_grad():
        kept = task.training_forward(batch)["ce"]
        m = task.croc
        embeds = m.embed(batch["input_ids"], batch["image_mask"], m.encode_images(batch["images"]))
        full = m.run_lm(embeds, batch["image_mask"], batch["answer_mask"], batch["padding_mask"], "causal").logits
    assert full.shape[1] == batch["input_ids"].shape[1]
    assert torch.allclose(kept, caption_ce(full, batch["labels"]), atol=1e-5)


def test_stage15_options_nearest_and_prefix(caption_out, tmp_path):
    cfg = tiny_config(caption_out, str(tmp_path / "r"),
                      overrides=["method.matching=nearest", "method.attention=prefix", "method.pool_init=normal"])
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    losses = task.training_forward(next(iter(build_stream(cfg, task, tok, epochs=1))))
    assert set(losses) == {"loss", "ce", "recon"} and all(v.isfinite() for v in losses.values())
    assert int(task.croc.step) == 1
