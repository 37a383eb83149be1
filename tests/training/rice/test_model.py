"""Region Transformer masking, CLS path equal to the plain open_clip tower, named configs."""

from __future__ import annotations

import pytest
import torch

from regionset.training.rice.model import ModelConfig, RiceViT, region_attention_mask, region_block
from regionset.training.rice.regions import box_token_mask

torch.set_num_threads(1)


def _model(**kw) -> RiceViT:
    torch.manual_seed(0)
    return RiceViT(ModelConfig(name="tiny", image_size=32, **kw)).eval()


def test_region_query_sees_only_its_patches():
    model = _model(region_layers=1, query_init="learned")
    g, w = 4, model.shape["width"]  # 32 px / patch 8 -> 4 x 4 tokens
    token_mask = torch.from_numpy(box_token_mask([[0, 0, 16, 16], [8, 8, 32, 32]], 32, 8))[None]
    inside = torch.nonzero(token_mask[0, 0]).flatten().tolist()
    assert inside == [0, 1, g, g + 1]
    x = torch.randn(1, 1 + g * g + 2, w)
    block, mask = model.visual.transformer.resblocks[-1], region_attention_mask(token_mask)
    with torch.no_grad():
        base = region_block(block, x, mask)
        outside = x.clone()
        outside[0, 1 + 15] += torch.randn(w)  # patch 15 (row 3, col 3) is outside region 0, inside region 1
        moved = region_block(block, outside, mask)
        inside_x = x.clone()
        inside_x[0, 1 + 1] += torch.randn(w)  # patch 1 is inside region 0
        moved_in = region_block(block, inside_x, mask)
    q0 = 1 + g * g
    torch.testing.assert_close(moved[0, q0], base[0, q0])  # region 0 unchanged
    assert not torch.allclose(moved[0, q0 + 1], base[0, q0 + 1])  # region 1 changed
    assert not torch.allclose(moved_in[0, q0], base[0, q0])


@pytest.mark.parametrize("query_init", ["cls", "learned", "mean"])
def test_cls_path_is_the_plain_open_clip_tower(query_init):
    model = _model(region_layers=2, query_init=query_init)
    images = torch.randn(2, 3, 32, 32)
    token_mask = torch.rand(2, 3, 16) > 0.5
    token_mask[..., 0] = True
    with torch.no_grad():
        cls, regions = model(images, token_mask)
        plain = model.encode_image(images)
    assert regions.shape == (2, 3, model.output_dim)
    torch.testing.assert_close(cls, plain, rtol=1e-4, atol=1e-5)


def test_box_token_mask_rules():
    m = box_token_mask([[9, 9, 10, 10], [40, 40, 50, 50], [0, 0, 0, 0]], 32, 8)
    assert m.sum(1).tolist() == [1, 1, 1]  # a tiny box, a box outside, an empty box: one token each
    assert m[0].nonzero()[0].tolist() == [5] and m[1].nonzero()[0].tolist() == [15]


def test_named_configs_and_errors():
    with pytest.raises(ValueError, match="model.name"):
        RiceViT(ModelConfig(name="huge"))
    with pytest.raises(ValueError, match="region_layers"):
        RiceViT(ModelConfig(name="tiny", region_layers=9))
    with pytest.raises(FileNotFoundError, match="init_from"):
        RiceViT(ModelConfig(name="tiny", init_from="/nonexistent/ViT-B-16.pt"))
