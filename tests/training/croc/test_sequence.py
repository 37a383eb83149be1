"""Sequences: one image span, labels -100 on the prompt, truncation never into the image."""

from __future__ import annotations

import torch

from regionset.training.croc.sequence import IGNORE, Segment, SequenceBuilder, collate_sequences
from regionset.training.croc.tokenizer import TokenizerConfig, build_tokenizer


def tokenizer():
    return build_tokenizer(TokenizerConfig(kind="bytes"), None)


def test_labels_only_on_the_answer_and_one_image_span():
    tok = tokenizer()
    b = SequenceBuilder(tok, num_visual_tokens=5, max_length=100)
    seq = b.build([Segment("Q: <image> what?"), Segment(" a cat", supervised=True)])
    n_prompt = 1 + len(tok.encode("Q: ", add_special_tokens=False)) + 5 + len(tok.encode(" what?", add_special_tokens=False))
    assert sum(seq["image_mask"]) == 5
    assert all(label == IGNORE for label in seq["labels"][:n_prompt])
    answer = tok.encode(" a cat", add_special_tokens=False) + [tok.eos_token_id]
    assert seq["labels"][n_prompt:] == answer
    assert seq["input_ids"][0] == tok.bos_token_id


def test_modality_grouping_drops_samples_without_exactly_one_image():
    b = SequenceBuilder(tokenizer(), 4, 100)
    assert b.build([Segment("no image"), Segment("x", True)]) is None
    assert b.build([Segment("<image> and <image>"), Segment("x", True)]) is None


def test_truncation_cuts_the_answer_only():
    b = SequenceBuilder(tokenizer(), 8, max_length=14)
    seq = b.build([Segment("<image>"), Segment("a long answer", True)])
    assert len(seq["input_ids"]) == 14 and sum(seq["image_mask"]) == 8
    assert b.build([Segment("a long prompt <image>"), Segment("x", True)]) is None  # image would be cut


def test_collate_pads_right():
    tok = tokenizer()
    b = SequenceBuilder(tok, 3, 100)
    samples = [b.build([Segment("<image>"), Segment(t, True)]) for t in ("a", "abcdef")]
    for s in samples:
        s["image"] = torch.zeros(3, 8, 8)
    batch = collate_sequences(samples, b.pad_id)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 1 + 3 + 7)
    assert batch["padding_mask"].sum(1).tolist() == [1 + 3 + 2, 1 + 3 + 7]
    assert (batch["labels"][0, 6:] == IGNORE).all()
    assert torch.equal(batch["answer_mask"], batch["labels"] != IGNORE)
    assert batch["image_mask"].sum(1).tolist() == [3, 3]
