"""The released templates, token by token: the v1 system prompt (stages 1.5 and 2) and the stage-1
plain template, labels -100 exactly on the prompt."""

from __future__ import annotations

import pytest

from regionset.common.typed_config import ConfigError, load_config
from regionset.training.croc.captions import CaptionConfig, CaptionTransform
from regionset.training.croc.config import CrocConfig
from regionset.training.croc.conversation import ConversationConfig, conversation_segments
from regionset.training.croc.sequence import IGNORE, SequenceBuilder
from regionset.training.croc.tokenizer import TokenizerConfig, build_tokenizer

N = 5  # visual tokens
# the released strings, written out from LLaVA's conv_vicuna_v1 / conv_llava_plain (sep " ", sep2 "</s>")
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
RECORD = {"conversations": [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A red square."},
                            {"from": "human", "value": "And the colour?"}, {"from": "gpt", "value": "Red."}]}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(TokenizerConfig(kind="bytes"), None)  # byte-level: encode(a + b) == encode(a) + encode(b)


def expect(tok, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """ids and labels of the released text: (text, supervised) pieces; "<image>" -> N placeholders,
    "</s>" -> the EOS id; BOS first."""
    ids, labels = [tok.bos_token_id], [IGNORE]
    for text, supervised in pieces:
        for i, part in enumerate(text.split("<image>")):
            if i:
                ids, labels = ids + [tok.pad_token_id] * N, labels + [IGNORE] * N
            for j, chunk in enumerate(part.split("</s>")):
                toks = ([tok.eos_token_id] if j else []) + tok.encode(chunk, add_special_tokens=False)
                ids += toks
                labels += toks if supervised else [IGNORE] * len(toks)
    return ids, labels


def test_v1_conversation_token_by_token(tok):
    seq = SequenceBuilder(tok, N, 4096).build(conversation_segments(RECORD, ConversationConfig(), "v1"))
    ids, labels = expect(tok, [(SYSTEM + " USER: <image>\nWhat is this? ASSISTANT: ", False), ("A red square.</s>", True),
                               ("USER: And the colour? ASSISTANT: ", False), ("Red.</s>", True)])
    assert seq["input_ids"] == ids
    assert seq["labels"] == labels
    assert sum(seq["image_mask"]) == N


def test_v1_caption_sample_token_by_token(tok):
    cfg = CaptionConfig(instruction="<image>\nDescribe the image in detail.")
    transform = CaptionTransform(cfg, SequenceBuilder(tok, N, 4096), 32, (0.5,) * 3, (0.5,) * 3, template="v1")
    seq = transform.builder.build(transform.segments("A red square."))
    ids, labels = expect(tok, [(SYSTEM + " USER: <image>\nDescribe the image in detail. ASSISTANT: ", False),
                               ("A red square.</s>", True)])
    assert (seq["input_ids"], seq["labels"]) == (ids, labels)


def test_plain_caption_sample_token_by_token(tok):
    transform = CaptionTransform(CaptionConfig(), SequenceBuilder(tok, N, 4096), 32, (0.5,) * 3, (0.5,) * 3,
                                 template="plain")
    seq = transform.builder.build(transform.segments("a red square"))
    ids, labels = expect(tok, [("<image>", False), ("a red square\n", True)])  # instruction dropped, no EOS
    assert (seq["input_ids"], seq["labels"]) == (ids, labels)
    assert seq["labels"][: 1 + N] == [IGNORE] * (1 + N) and tok.eos_token_id not in seq["input_ids"]


def test_plain_skips_what_it_cannot_write(tok):
    assert conversation_segments(RECORD, ConversationConfig(), "plain") == []  # two rounds
    assert SequenceBuilder(tok, N, 4096).build([]) is None


def test_template_is_selected_by_config():
    assert load_config(CrocConfig, None, ["data.template=v1"]).data.template == "v1"
    assert load_config(CrocConfig, None, []).data.template == "custom"
    with pytest.raises(ConfigError, match="template"):
        load_config(CrocConfig, None, ["data.template=chatml"])


def test_custom_default_layout_is_unchanged(tok):
    transform = CaptionTransform(CaptionConfig(), SequenceBuilder(tok, N, 4096), 32, (0.5,) * 3, (0.5,) * 3)
    seq = transform.builder.build(transform.segments("a cat"))
    ids, labels = expect(tok, [("USER: <image>\nDescribe the image. ASSISTANT:", False), (" a cat</s>", True)])
    assert (seq["input_ids"], seq["labels"]) == (ids, labels)
