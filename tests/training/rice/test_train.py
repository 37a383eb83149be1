"""End to end on synthetic shards: train, checkpoint, resume with data position, export to open_clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from regionset.common.typed_config import ConfigError
from regionset.training.cli import main, run_training
from regionset.training.rice.export import load_exported
from regionset.training.rice.model import ModelConfig, RiceViT
from regionset.training.synthetic import write_synthetic_shards

CONFIG = os.path.join(os.path.dirname(__file__), "../../../training/configs/rice-tiny.yaml")


def _overrides(data, out, steps):
    return [f"data.train_dir={data}", f"loop.out_dir={out}", f"loop.steps={steps}", "loop.log_every=2",
            "loop.save_every=2", "loop.warmup_steps=1", "data.batch_size=4", "data.num_workers=0",
            "model.image_size=32", "loss.num_tokens=32", "device=cpu"]


def test_train_checkpoint_resume_export(tmp_path):
    torch.set_num_threads(2)
    write_synthetic_shards(str(tmp_path / "out"), num_shards=2, rows_per_shard=8, size=32)
    run = tmp_path / "run"
    first = run_training("rice", CONFIG, _overrides(tmp_path / "out", run, 4))
    assert first["steps"] == 4 and [h["step"] for h in first["history"]] == [2, 4]
    assert {"loss_object", "loss_text", "loss_cls", "samples_per_s"} <= set(first["history"][0])
    meta = json.loads((run / "checkpoints" / "step-00000004" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["data"][0]["positions"]["0"] == {"epoch": 0, "unit": 2, "row": 0}
    assert meta["config"]["loss"]["num_classes"] == 12  # scanned from the shards
    assert (run / "checkpoints" / "latest").read_text() == "step-00000004"

    second = run_training("rice", CONFIG, _overrides(tmp_path / "out", run, 6))
    assert [h["step"] for h in second["history"]] == [6]  # resumed at step 4, not from scratch

    exported = load_exported(second["export"])
    model = RiceViT(ModelConfig(name="tiny", image_size=32)).eval()
    model.visual.load_state_dict(torch.load(os.path.join(second["export"], "visual.pt"), weights_only=True))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported.encode_image(images), model.encode_image(images))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="loop.stepz"):
        run_training("rice", CONFIG, ["loop.stepz=3"])
    with pytest.raises(ConfigError, match="model.region_layers"):
        run_training("rice", CONFIG, ["model.region_layers=two"])
    with pytest.raises(SystemExit):
        main(["unknown-kind", CONFIG])


@pytest.mark.slow
def test_torchrun_two_cpu_ranks(tmp_path):
    write_synthetic_shards(str(tmp_path / "out"), num_shards=2, rows_per_shard=8, size=32)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "regionset.training.rice", CONFIG,
           *_overrides(tmp_path / "out", tmp_path / "run", 4)]
    subprocess.run(cmd, check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000004"
    assert (ckpt / "shard-rank0.pt").exists() and (ckpt / "shard-rank1.pt").exists()
    assert len(json.loads((ckpt / "meta.json").read_text())["data"]) == 2
