"""End to end through the shared loop: the tiny model learns, and resume continues exactly."""

from __future__ import annotations

import os

import pytest

from regionset.training.cli import run_training
from regionset.training.croc.train import run

from .conftest import write_caption_shards

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "training", "configs", "croc-tiny.yaml")


def overrides(out: str, run_dir: str, *extra: str) -> list[str]:
    return [f"data.train_dir={out}", f"loop.out_dir={run_dir}", "data.num_workers=0", "device=cpu", *extra]


def test_caption_and_reconstruction_losses_fall(tmp_path):
    out = str(tmp_path / "out")
    write_caption_shards(out, rows=24)
    summary = run_training("croc", CONFIG, overrides(out, str(tmp_path / "run"), "loop.steps=40", "loop.log_every=1",
                                                    "loop.save_every=0", "method.lr.lm=0.002", "method.lr.projector=0.002",
                                                    "method.lr.pool=0.002", "method.lr.recon_head=0.002"))
    first, last = summary["history"][0], summary["history"][-5:]
    ce = sum(r["ce"] for r in last) / len(last)
    recon = sum(r["recon"] for r in last) / len(last)
    assert ce < 0.6 * first["ce"], (first["ce"], ce)
    assert recon < 0.3 * first["recon"], (first["recon"], recon)


def test_resume_gives_the_same_next_step_loss(caption_out, tmp_path):
    run_dir = str(tmp_path / "run")
    args = overrides(caption_out, run_dir, "loop.steps=4", "loop.log_every=1", "loop.save_every=2")
    straight = {r["step"]: r["loss"] for r in run(CONFIG, args)["history"]}
    root = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(root, "latest"), "w") as f:
        f.write("step-00000002")  # as if the run had stopped after step 2
    resumed = {r["step"]: r["loss"] for r in run(CONFIG, args)["history"]}
    assert sorted(resumed) == [3, 4]
    assert resumed[3] == pytest.approx(straight[3], rel=1e-5, abs=1e-6)
    assert resumed[4] == pytest.approx(straight[4], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(caption_out, tmp_path):
    import json
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "regionset.training.croc", CONFIG,
           *overrides(caption_out, str(run_dir), "loop.steps=3", "loop.log_every=1", "loop.save_every=3")]
    subprocess.run(cmd, check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    meta = json.loads((run_dir / "checkpoints" / "step-00000003" / "meta.json").read_text())
    assert meta["kind"] == "croc" and len(meta["data"]) == 2
    assert (run_dir / "tokenizer.json").exists()


def test_stage1_then_stage15_from_its_checkpoint(caption_out, tmp_path):
    import torch

    from regionset.training.croc.build import build_croc

    from .conftest import tiny_config

    stage1 = str(tmp_path / "stage1")
    run(CONFIG, overrides(caption_out, stage1, "method.stage='1'", "method.lr={}", "method.attention=null",
                          "loop.steps=2", "loop.save_every=2"))
    cfg = tiny_config(caption_out, str(tmp_path / "stage15"), overrides=[f"method.init_from={stage1}"])
    task, _ = build_croc(cfg, cfg.loop.out_dir)
    saved = torch.load(os.path.join(stage1, "checkpoints", "step-00000002", "model.pt"), weights_only=True)["model"]
    assert torch.equal(task.croc.projector.fc1.weight, saved["projector.fc1.weight"])
    assert int(task.croc.step) == 0  # the masking step count starts afresh
    tokenizer = "tokenizer.json"
    assert (tmp_path / "stage15" / tokenizer).read_text() == (tmp_path / "stage1" / tokenizer).read_text()
