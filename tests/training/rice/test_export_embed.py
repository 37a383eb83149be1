"""A trained RICE trunk feeds the pipeline: `embed.model=rice:<export folder>` embeds with it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from regionset.models.clip_registry import clip_embed_dim
from regionset.models.embedder import ClipEmbedder
from regionset.training.rice.export import export_trunk, load_exported
from regionset.training.rice.model import ModelConfig, RiceViT


def test_embed_stage_model_id_loads_a_rice_export(tmp_path):
    torch.manual_seed(0)
    trunk = RiceViT(ModelConfig(name="tiny", image_size=32)).eval()
    export = export_trunk(trunk, str(tmp_path / "export"))
    model_id = f"rice:{export}"
    emb = ClipEmbedder(model=model_id, device="cpu")
    assert not emb.random_weights and emb.model_id.startswith("rice-export:")
    assert clip_embed_dim(model_id) == emb.dim
    crop = Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8))
    got = emb.encode([crop])
    ref_model = load_exported(export)
    with torch.no_grad():
        ref = ref_model.encode_image(emb.preprocess(crop)[None]).float()
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    assert got.shape == (1, emb.dim)
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_embed_stage_accepts_the_rice_model_id(tmp_path):
    from regionset.stages.embed import EmbedConfig, EmbedStage

    export = export_trunk(RiceViT(ModelConfig(name="tiny", image_size=32)).eval(), str(tmp_path / "export"))
    stage = EmbedStage(EmbedConfig(model=f"rice:{export}", device="cpu"))
    schema = stage.output_schema()
    assert isinstance(schema.field("embedding").type, pa.FixedSizeListType)
    assert "rice-export" in str(stage.lineage())
