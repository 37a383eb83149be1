"""The reconstruction head's options: the default head unchanged, the released head's exact shapes
and BERT semantics, ViCToR's linear head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regionset.training.croc.method import CrocMethodConfig
from regionset.training.croc.recon import ReconstructionHead

RELEASED = CrocMethodConfig(recon_positions=True, recon_norm="post", recon_head_dim=64, recon_mlp_ratio=4.0,
                            recon_dropout=0.1, recon_init_std=0.02)


def released_shapes(dim: int, tokens: int) -> dict[str, tuple[int, ...]]:
    """The released ``transform_block`` (croc_llama.py ``CustomTransformer(1, dim, dim)``): an
    ``nn.Embedding(576, dim)``, one ``BertLayer(BertConfig(hidden_size=dim, intermediate_size=4 dim,
    num_attention_heads=dim // 64))`` and ``resize = nn.Linear(dim, dim)``; names as there, with the
    prefixes ``layers.0.`` -> ``layer.`` and ``resize.`` -> ``proj.``."""
    ffn = 4 * dim
    shapes = {"position_embeddings.weight": (tokens, dim)}
    for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        shapes[f"layer.{name}.weight"], shapes[f"layer.{name}.bias"] = (dim, dim), (dim,)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        shapes[f"layer.{name}.weight"], shapes[f"layer.{name}.bias"] = (dim,), (dim,)
    shapes["layer.intermediate.dense.weight"], shapes["layer.intermediate.dense.bias"] = (ffn, dim), (ffn,)
    shapes["layer.output.dense.weight"], shapes["layer.output.dense.bias"] = (dim, ffn), (dim,)
    shapes["proj.weight"], shapes["proj.bias"] = (dim, dim), (dim,)
    return shapes


def shapes_of(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_released_head_shapes_at_vicuna_7b_width():
    with torch.device("meta"):  # 4096 wide: shapes only, no memory
        head = ReconstructionHead(4096, **RELEASED.recon_head_options(576))
    assert shapes_of(head) == released_shapes(4096, 576)
    assert head.layer.heads == 64  # BertConfig num_attention_heads = 4096 // 64


def test_position_embeddings_follow_the_image_token_count():
    head = ReconstructionHead(64, **RELEASED.recon_head_options(16))
    assert shapes_of(head) == released_shapes(64, 16)
    assert head(torch.randn(2, 16, 64)).shape == (2, 16, 64)
    with pytest.raises(ValueError, match="16 position embeddings but the image has 12 tokens"):
        head(torch.randn(2, 12, 64))


def test_default_head_is_unchanged():
    cfg = CrocMethodConfig()
    head = ReconstructionHead(64, **cfg.recon_head_options(16))
    assert head.position_embeddings is None and isinstance(head.layer, nn.TransformerEncoderLayer)
    assert head.layer.norm_first and head.layer.self_attn.num_heads == 8 and head.layer.dropout.p == 0.0
    assert shapes_of(head)["layer.self_attn.in_proj_weight"] == (192, 64)
    assert shapes_of(head)["layer.linear1.weight"] == (256, 64)
    assert not any(k.startswith("position_embeddings") for k in head.state_dict())


def test_post_norm_layer_computes_what_bert_layer_does():
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    torch.manual_seed(0)
    head = ReconstructionHead(64, **RELEASED.recon_head_options(10))
    bert = BertLayer(BertConfig(hidden_size=64, intermediate_size=256, num_attention_heads=1,
                                attn_implementation="eager"))
    # same parameter names: the released weights load as they are (strict)
    bert.load_state_dict({k.removeprefix("layer."): v for k, v in head.state_dict().items() if k.startswith("layer.")})
    head.eval()
    bert.eval()
    x = torch.randn(3, 10, 64)
    ref = bert(x + head.position_embeddings.weight)
    ref = ref[0] if isinstance(ref, tuple) else ref
    with torch.no_grad():
        assert torch.allclose(head(x), head.proj(ref), atol=1e-5)


def test_dropout_is_on_in_training_only():
    torch.manual_seed(0)
    head = ReconstructionHead(64, **RELEASED.recon_head_options(8))
    x = torch.randn(2, 8, 64)
    assert not torch.equal(head(x), head(x))
    head.eval()
    assert torch.equal(head(x), head(x))


@torch.no_grad()
def test_init_std_gives_bert_style_initialisation():
    torch.manual_seed(0)
    head = ReconstructionHead(256, **RELEASED.recon_head_options(32))
    assert abs(float(head.layer.intermediate["dense"].weight.std()) - 0.02) < 0.002
    assert abs(float(head.position_embeddings.weight.std()) - 0.02) < 0.002
    assert float(head.proj.bias.abs().max()) == 0.0
    assert float(head.layer.output["LayerNorm"].weight.min()) == 1.0


def test_victor_linear_head():
    cfg = CrocMethodConfig(recon_layers=0)
    head = ReconstructionHead(64, **cfg.recon_head_options(16))
    assert shapes_of(head) == {"proj.weight": (64, 64), "proj.bias": (64,)}
    x = torch.randn(2, 16, 64)
    assert torch.allclose(head(x), x @ head.proj.weight.T + head.proj.bias)


def test_bad_head_options_are_named():
    with pytest.raises(ValueError, match="recon_norm"):
        ReconstructionHead(64, norm="mid")
