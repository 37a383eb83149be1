"""``loop.out_dir=s3://…``: checkpoints are objects with a completion object last, nothing named
``s3:`` appears locally, and a checkpoint missing its completion object is ignored on resume."""

from __future__ import annotations

import json
import os

import torch

from regionset.common.storage import as_path
from regionset.training.checkpoint import COMPLETE, latest_checkpoint
from regionset.training.cli import run_training
from regionset.training.synthetic import write_synthetic_shards
from tests.s3server import s3  # noqa: F401 (fixture)

CONFIG = os.path.join(os.path.dirname(__file__), "../../training/configs/rice-tiny.yaml")


def rice_overrides(data, out, steps, *extra):
    return [f"data.train_dir={data}", f"loop.out_dir={out}", f"loop.steps={steps}", "loop.log_every=2",
            "loop.save_every=2", "loop.warmup_steps=1", "data.batch_size=4", "data.num_workers=0",
            "model.image_size=32", "loss.num_tokens=32", "device=cpu", *extra]


def test_checkpoints_are_objects_and_nothing_named_s3_is_created(s3, tmp_path, monkeypatch):  # noqa: F811
    torch.set_num_threads(2)
    write_synthetic_shards(str(tmp_path / "out"), num_shards=2, rows_per_shard=8, size=32)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    url = s3.url("runs/rice-a")
    first = run_training("rice", CONFIG, rice_overrides(tmp_path / "out", url, 4))
    assert first["steps"] == 4 and first["export"] == f"{url}/export"
    keys = set(s3.keys("runs/rice-a"))
    for step in ("00000002", "00000004"):
        for name in ("model.pt", "shard-rank0.pt", "optim-rank0.pt", "rng-rank0.pt", "meta.json", COMPLETE):
            assert f"checkpoints/step-{step}/{name}" in keys
    assert {"checkpoints/latest", "log.jsonl", "export/visual.pt"} <= keys
    assert not any("s3:" in p for p in os.listdir(work)) and not (tmp_path / "s3:").exists()
    root = as_path(url)
    complete = json.loads((root / "checkpoints/step-00000004" / COMPLETE).read_text())
    assert set(complete["files"]) == {"model.pt", "shard-rank0.pt", "optim-rank0.pt", "rng-rank0.pt", "meta.json"}
    log = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]

    # a save of step 4 that did not finish: its completion object is missing, latest still names it
    (root / "checkpoints/step-00000004" / COMPLETE).unlink()
    assert latest_checkpoint(url) == f"{url}/checkpoints/step-00000002"
    second = run_training("rice", CONFIG, rice_overrides(tmp_path / "out", url, 6, "export=false"))
    assert [h["step"] for h in second["history"]] == [4, 6]  # resumed at step 2, not 4, not 0


def test_resume_from_objects_equals_an_uninterrupted_run(s3, tmp_path):  # noqa: F811
    torch.set_num_threads(2)
    write_synthetic_shards(str(tmp_path / "out"), num_shards=2, rows_per_shard=8, size=32)
    whole, parts = s3.url("runs/whole"), s3.url("runs/parts")
    run_training("rice", CONFIG, rice_overrides(tmp_path / "out", whole, 4, "export=false"))
    run_training("rice", CONFIG, rice_overrides(tmp_path / "out", parts, 2, "export=false"))
    run_training("rice", CONFIG, rice_overrides(tmp_path / "out", parts, 4, "export=false"))
    for name in ("model.pt", "shard-rank0.pt"):
        a = torch.load(as_path(f"{whole}/checkpoints/step-00000004/{name}").open("rb"), weights_only=True)
        b = torch.load(as_path(f"{parts}/checkpoints/step-00000004/{name}").open("rb"), weights_only=True)
        for child in a:
            for k in a[child]:
                assert torch.equal(a[child][k], b[child][k]), (name, child, k)


def test_croc_tokenizer_lives_next_to_the_checkpoints_on_the_store(s3, tmp_path, monkeypatch):  # noqa: F811
    from tests.training.croc.conftest import write_caption_shards

    torch.set_num_threads(2)
    write_caption_shards(str(tmp_path / "out"), num_shards=2, rows=8)
    monkeypatch.chdir(tmp_path)
    url = s3.url("runs/croc-a")
    config = os.path.join(os.path.dirname(__file__), "../../training/configs/croc-tiny.yaml")
    args = [f"data.train_dir={tmp_path / 'out'}", f"loop.out_dir={url}", "data.num_workers=0", "device=cpu",
            "data.batch_size=4", "loop.log_every=1", "loop.save_every=2", "loop.warmup_steps=1"]
    run_training("croc", config, [*args, "loop.steps=2"])
    keys = set(s3.keys("runs/croc-a"))
    assert {"tokenizer.json", "checkpoints/step-00000002/complete.json", "checkpoints/latest"} <= keys
    saved = as_path(f"{url}/tokenizer.json").read_text()
    resumed = run_training("croc", config, [*args, "loop.steps=3"])
    assert [h["step"] for h in resumed["history"]] == [3]
    assert as_path(f"{url}/tokenizer.json").read_text() == saved  # read back, not retrained
    assert not (tmp_path / "s3:").exists()
