"""Croc samples off train shards: plain and detailed captions, tokenizers, stage-2 conversations."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq

from regionset.training.croc.build import build_croc, build_stream
from regionset.training.croc.captions import CaptionConfig, DetailedCaption
from regionset.training.croc.sequence import IGNORE

from .conftest import tiny_config


def test_caption_batches_from_shards(caption_out, tmp_path):
    cfg = tiny_config(caption_out, str(tmp_path / "run"))
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    assert os.path.exists(tmp_path / "run" / "tokenizer.json")  # reused on resume
    batch = next(iter(build_stream(cfg, task, tok, epochs=1)))
    n = task.croc.num_visual_tokens
    assert batch["images"].shape == (8, 3, 64, 64)
    assert (batch["image_mask"].sum(1) == n).all()
    row = pq.read_table(os.path.join(caption_out, "train", "part-00000.parquet")).to_pylist()[0]
    captions = {tok.decode([t for t in lab if t != IGNORE], skip_special_tokens=True).strip()
                for lab in batch["labels"].tolist()}
    assert all(c for c in captions)
    assert row["caption"].split()[0] in " ".join(captions)


def test_detailed_caption_from_regions(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer

    names = tmp_path / "names.json"
    names.write_text(json.dumps({"5": "green circle"}))
    row = {"caption": "a test.", "width": 90, "height": 90, "regions": [
        {"region_id": "a", "box": [0, 0, 30, 30], "source": "object", "class_id": 5, "token_ids": []},
        {"region_id": "b", "box": [60, 60, 90, 90], "source": "object", "class_id": 7, "token_ids": []},
        {"region_id": "c", "box": [30, 30, 60, 60], "source": "text", "class_id": -1,
         "token_ids": SimpleTokenizer().encode("open now")},
    ]}
    text = DetailedCaption(CaptionConfig(caption="detailed", class_names=str(names)))(row)
    assert text == 'a test. Objects: green circle (top left), class 7 (bottom right). Text: "open now".'


def test_conversations_by_train_key(caption_out, tmp_path):
    key = pq.read_table(os.path.join(caption_out, "train", "part-00001.parquet"), columns=["key"])["key"][0].as_py()
    jsonl = tmp_path / "conv.jsonl"
    records = [
        {"id": "1", "image": key, "conversations": [
            {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "Shapes."},
            {"from": "human", "value": "Colours?"}, {"from": "gpt", "value": "Several."}]},
        {"id": "2", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"id": "3", "image": "missing-key", "conversations": [{"from": "human", "value": "<image>"},
                                                              {"from": "gpt", "value": "x"}]},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in records))
    cfg = tiny_config(caption_out, str(tmp_path / "run"), stage="2",
                      overrides=["data.source=conversations", f"data.conversations.path={jsonl}",
                                 "data.max_length=200"])
    task, tok = build_croc(cfg, cfg.loop.out_dir)
    batches = list(build_stream(cfg, task, tok, epochs=1))
    assert sum(b["images"].shape[0] for b in batches) == 1  # text-only and unresolvable samples skipped
    labels = batches[0]["labels"][0].tolist()
    supervised = tok.decode([t for t in labels if t != IGNORE], skip_special_tokens=True)
    assert supervised == "Shapes.Several."
    loss = task.training_forward(batches[0])["loss"]
    assert loss.isfinite()
