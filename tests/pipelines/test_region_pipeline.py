"""End to end: download (loopback) -> detect -> ocr -> embed through regionset.pipelines.build.build."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow.parquet as pq
import yaml

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.core.shards import marker_path, shard_path
from tests.helpers import table_hash, write_urls
from tests.synth import encode, render_text_image, synthetic_scene, text_lines


def test_download_detect_ocr_embed(server, tmp_path):
    lines = text_lines(3, seed=9)
    text_img, _ = render_text_image(lines, [28, 32, 36], width=700)
    urls = [server.add(f"scene{i}.jpg", encode(synthetic_scene(i, size=(400, 520))[0])) for i in range(3)]
    urls.append(server.add("text.png", encode(text_img, "PNG")))
    urls.append(server.add("small.jpg", encode(synthetic_scene(5, size=(200, 260), n=1, min_side=60, max_side=90)[0])))
    urls.append(server.add("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"))
    urls.append(server.url("status/404"))
    out = tmp_path / "out"
    cfg = load_config(None, [
        f"output={out}", f"input.path={write_urls(tmp_path, urls)}", "input.shard_size=4",
        "steps=[download, detect, ocr, embed]", "download.allow_loopback=true", "download.timeout=2",
        "progress=false", "embed.device=cpu", "detect.min_box_side=100"])
    result = build(cfg)
    reports = {r.stage: r for r in result.reports}
    assert [r.stage for r in result.reports] == ["download", "detect", "ocr", "embed"]
    assert all(r.done == 2 and r.waiting == 0 for r in result.reports)
    assert reports["detect"].counters["skip:image_too_small"] == 1

    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    texts = [t for (t,) in con.execute("SELECT text FROM regions WHERE source = 'text' ORDER BY y0").fetchall()]
    assert sum(t in texts for t in lines) >= 2, texts
    n_obj = con.execute("SELECT count(*) FROM regions WHERE source = 'object'").fetchone()[0]
    assert n_obj >= 6  # 3 scenes x >= 2 pasted objects found
    n_regions = con.execute("SELECT count(*) FROM regions").fetchone()[0]
    n_emb, dim = con.execute("SELECT count(*), max(len(embedding)) FROM embeddings").fetchone()
    assert n_emb == n_regions and dim == 256
    orphans = con.execute("SELECT count(*) FROM embeddings e ANTI JOIN regions r USING (region_id)").fetchone()[0]
    assert orphans == 0
    con.close()
    v = np.asarray(pq.read_table(out / "embeddings" / "part-00000.parquet").column("embedding").to_pylist(), np.float32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=2e-3)

    lineage = yaml.safe_load((out / "regionset.yaml").read_text())
    assert any("RANDOM weights" in w for w in lineage["warnings"])
    assert set(lineage["models"]) >= {"detect", "ocr", "embed"}

    before = {t: table_hash(out, t) for t in ("regions/object", "regions/text", "embeddings")}
    again = build(cfg)
    assert all(r.done == 0 for r in again.reports)
    assert {t: table_hash(out, t) for t in before} == before
    # redo detect and embed for one shard: same region ids, same vectors (random init is seeded)
    for stage, folder in (("detect", "regions/object"), ("embed", "embeddings")):
        marker_path(out, stage, 0).unlink()
        shard_path(out, folder, 0).unlink()
    redo = build(cfg)
    assert {r.stage: r.done for r in redo.reports}["embed"] == 1
    assert {t: table_hash(out, t) for t in before} == before
