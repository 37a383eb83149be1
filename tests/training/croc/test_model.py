"""The Croc model: visual token count from the encoder, unit-norm projector, clear offline errors."""

from __future__ import annotations

import pytest
import torch

from regionset.training.croc.lm import LMConfig, build_lm
from regionset.training.croc.model import build_croc_model
from regionset.training.croc.pool import PromptTokenPool, num_masked, random_mask, replace_tokens
from regionset.training.croc.tokenizer import TokenizerConfig, build_tokenizer
from regionset.training.croc.vision import VisionConfig, build_vision_encoder


@pytest.mark.parametrize("size,patch,tokens", [(64, 16, 16), (96, 16, 36), (64, 8, 64)])
def test_visual_tokens_come_from_the_encoder(size, patch, tokens):
    torch.manual_seed(0)
    tok = build_tokenizer(TokenizerConfig(kind="bytes"), None)
    vision = VisionConfig(tower=dict(image_size=size, patch_size=patch, width=32, layers=2, head_width=16))
    model = build_croc_model(vision, LMConfig(), tok)
    assert model.num_visual_tokens == tokens
    visual = model.encode_images(torch.randn(2, 3, size, size))
    assert visual.shape == (2, tokens, 64)
    assert torch.allclose(visual.norm(dim=-1), torch.ones(2, tokens), atol=1e-5)


def test_rice_trunk_as_encoder():
    enc = build_vision_encoder(VisionConfig(kind="rice", rice_model="tiny"))
    assert enc(torch.randn(1, 3, enc.image_size, enc.image_size)).shape == (1, enc.num_tokens, enc.width)


def test_offline_names_fail_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="croc.lm.path"):
        build_lm(LMConfig(path=str(tmp_path / "no-such-model")), 10, None, None, None)
    with pytest.raises(RuntimeError, match="croc.vision.pretrained"):
        build_vision_encoder(VisionConfig(name="ViT-B-32", pretrained="openai"))


def test_pool_init_and_masking():
    torch.manual_seed(0)
    unit = PromptTokenPool(16, 32)
    assert torch.allclose(unit.weight.norm(dim=-1), torch.ones(16), atol=1e-5)
    assert PromptTokenPool(16, 32, init="normal").weight.norm(dim=-1).mean() > 3
    assert num_masked(576, 0.75) == 432
    pos = random_mask(3, 20, 0.75, torch.Generator().manual_seed(1))
    assert pos.shape == (3, 15)
    assert all(len(set(r.tolist())) == 15 for r in pos)
    assert not torch.equal(pos[0], pos[1])  # drawn per image
    tokens, repl = torch.zeros(3, 20, 4), torch.ones(3, 15, 4)
    out = replace_tokens(tokens, pos, repl)
    assert out.sum(-1).ne(0).sum().item() == 45
    assert (out.sum(-1).ne(0).nonzero()[:, 1].view(3, 15) == pos).all()
