"""The mixed attention mask, cell by cell, and its effect inside a real (tiny) LM."""

from __future__ import annotations

import pytest
import torch

from regionset.training.croc.attention import allowed_pairs, build_attention_mask
from regionset.training.croc.lm import TINY_LLAMA, LMConfig, build_lm

# layout of one sample: 0 bos, 1 text, 2-4 image, 5 text, 6-7 answer, 8-9 padding
IMAGE = torch.tensor([[0, 0, 1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
ANSWER = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)
REAL = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)


def expected(q: int, k: int, mode: str) -> bool:
    if q >= 8:  # padding queries see only themselves
        return q == k
    if k >= 8:  # padding keys are never seen
        return False
    region = {"image": {2, 3, 4}, "prefix": set(range(6)), "causal": set()}[mode]
    return k <= q or (q in region and k in region)


@pytest.mark.parametrize("mode", ["image", "prefix", "causal"])
def test_mask_every_cell(mode):
    allowed = allowed_pairs(IMAGE, ANSWER, REAL, mode)[0]
    for q in range(10):
        for k in range(10):
            assert bool(allowed[q, k]) == expected(q, k, mode), (mode, q, k)
    additive = build_attention_mask(IMAGE, ANSWER, REAL, mode, torch.float32)
    assert additive.shape == (1, 1, 10, 10)
    assert torch.equal(additive[0, 0] == 0, allowed)


def test_image_mode_specifics():
    allowed = allowed_pairs(IMAGE, ANSWER, REAL, "image")[0]
    assert allowed[2, 4] and allowed[4, 2]  # image <-> image both ways
    assert not allowed[1, 2]  # text before the image does not see it
    assert not allowed[6, 7]  # the answer cannot see its future
    assert allowed[7, 6] and allowed[6, 3]


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_lm_respects_the_mask(impl):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    lm = build_lm(LMConfig(config=dict(TINY_LLAMA), attn_implementation=impl), 50, 1, 2, 0).eval()
    mask = build_attention_mask(IMAGE, ANSWER, REAL, "image", torch.float32)
    pos = torch.arange(10).unsqueeze(0)
    embeds = torch.randn(1, 10, 64)

    def run(x):
        with torch.no_grad():
            out = lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        return out.logits, out.hidden_states[-1]

    logits, hidden = run(embeds)
    later_answer = embeds.clone()
    later_answer[0, 7] += 1.0
    logits2, _ = run(later_answer)
    assert torch.allclose(logits[0, :7], logits2[0, :7], atol=1e-5)
    assert not torch.allclose(logits[0, 7], logits2[0, 7])
    later_image = embeds.clone()
    later_image[0, 4] += 1.0
    _, hidden3 = run(later_image)
    assert not torch.allclose(hidden[0, 2], hidden3[0, 2])  # earlier image positions see later ones
    assert torch.allclose(hidden[0, :2], hidden3[0, :2], atol=1e-5)  # text before the image does not
    assert torch.isfinite(logits).all()
