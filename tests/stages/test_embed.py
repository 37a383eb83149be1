"""embed stage: prepare joins images and regions; fp16 unit vectors per region; bad rows counted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from regionset.schemas import (
    IMAGES,
    REGIONS_OBJECT,
    REGIONS_TEXT,
    embeddings_schema,
    images_schema,
    validate_table,
)
from regionset.stages.detect import DetectStage
from regionset.stages.embed import EmbedConfig, EmbedStage
from regionset.stages.region_helpers import RegionRows
from tests.stages.test_detect import ledger
from tests.synth import synthetic_scene


def _regions(source: str, boxes: dict[str, list[list[float]]]) -> pa.Table:
    from collections import Counter

    rows = RegionRows(source, "test", Counter())
    for key, bs in boxes.items():
        for b in bs:
            rows.add(key, np.asarray(b, np.float32), 1.0, text="t" if source == "text" else None)
    return rows.table()


@pytest.fixture(scope="module")
def stage():
    s = EmbedStage(EmbedConfig(device="cpu", batch_size=4))
    s.ensure_setup()
    return s


def _inputs():
    images = ledger([synthetic_scene(s, size=(360, 480))[0] for s in range(2)])
    bad = pa.Table.from_pylist([{"key": "bad", "url": "u", "status": "success", "jpg": b"broken"}],
                               schema=images_schema())
    images = pa.concat_tables([images, bad])
    obj = _regions("object", {"000000000": [[0, 0, 100, 100], [50, 60, 300, 200], [10, 10, 10.2, 90]],
                              "000000001": [[5, 5, 480, 360]], "bad": [[0, 0, 5, 5]], "ghost": [[0, 0, 9, 9]]})
    txt = _regions("text", {"000000001": [[20, 20, 200, 40]]})
    return {IMAGES: images, REGIONS_OBJECT: obj, REGIONS_TEXT: txt}


def test_embed_stage_outputs_unit_fp16_vectors(stage):
    tables = _inputs()
    prepared = stage.prepare(tables)
    assert prepared.num_rows == 3 and "regions" in prepared.column_names
    out = stage.process(prepared)
    validate_table(out, stage.output_schema(), "embeddings")
    assert out.schema.field("embedding").type == pa.list_(pa.float16(), 256)
    c = stage.take_counters()
    assert c["drop:region_without_image"] == 1 and c["drop:image_unusable"] == 1
    assert c["skip:corrupt_image"] == 1 and c["drop:empty_crop"] == 1
    assert out.num_rows == c["regions:embedded"] == 4
    v = np.asarray(out.column("embedding").to_pylist(), np.float32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=2e-3)
    assert set(out.column("model").to_pylist()) == {stage.embedder.model_id}
    ids = set(tables[REGIONS_OBJECT].column("region_id").to_pylist()) | set(tables[REGIONS_TEXT].column("region_id").to_pylist())
    assert set(out.column("region_id").to_pylist()) <= ids


def test_batch_size_does_not_change_vectors(stage):
    tables = _inputs()
    a = stage.process(stage.prepare(tables))
    other = EmbedStage(EmbedConfig(device="cpu", batch_size=1))
    b = other.process(other.prepare(tables))
    assert a.column("region_id").to_pylist() == b.column("region_id").to_pylist()
    np.testing.assert_allclose(np.asarray(a.column("embedding").to_pylist(), np.float32),
                               np.asarray(b.column("embedding").to_pylist(), np.float32), atol=2e-3)


def test_sources_choose_inputs_and_lineage_warns():
    s = EmbedStage(EmbedConfig(sources=("object",)))
    assert s.inputs == (IMAGES, REGIONS_OBJECT)
    assert EmbedStage().inputs == (IMAGES, REGIONS_OBJECT, REGIONS_TEXT)
    assert s.output_schema() == embeddings_schema(256)
    assert "RANDOM weights" in s.lineage()["warnings"][0]
    with pytest.raises(ValueError, match="embed.sources"):
        EmbedStage(EmbedConfig(sources=("caption",)))


def test_context_padding_stays_inside_the_image(stage):
    tables = _inputs()
    padded = EmbedStage(EmbedConfig(device="cpu", context=0.5))
    crops = list(padded.crops(padded.prepare(tables)))
    assert len(crops) == 4
    assert all(c[2].size[0] <= 480 and c[2].size[1] <= 360 for c in crops)


def test_empty_shard(stage):
    empty = {IMAGES: ledger([]), REGIONS_OBJECT: _regions("object", {}), REGIONS_TEXT: _regions("text", {})}
    out = stage.process(stage.prepare(empty))
    assert out.num_rows == 0 and out.schema == stage.output_schema()


def test_detect_then_embed_in_process():
    images = ledger([synthetic_scene(0)[0]])
    det = DetectStage()
    det.ensure_setup()
    regions = det.process(images)
    emb = EmbedStage(EmbedConfig(device="cpu", sources=("object",)))
    out = emb.process(emb.prepare({IMAGES: images, REGIONS_OBJECT: regions}))
    assert out.column("region_id").to_pylist() == regions.column("region_id").to_pylist()
