"""`regionset build` wiring: fit_kmeans → assign → pack, an extended URL list, and a refit."""

from __future__ import annotations

import numpy as np

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from tests.helpers import write_urls
from tests.label_data import gaussian_mixture, key_of, write_image_shard, write_region_shard

PER_SHARD = 24  # regions per shard (6 images of 4 regions)


def _tables(out, shards):
    x, _ = gaussian_mixture(PER_SHARD * 20, k=10, d=8, seed=9)
    for s in shards:
        idx = np.arange(s * PER_SHARD, (s + 1) * PER_SHARD)
        write_region_shard(out, s, idx, x[idx])
        write_image_shard(out, s, sorted({key_of(i) for i in idx}))


def _build(out, urls, *extra):
    cfg = load_config(None, [f"output={out}", f"input.path={urls}", "input.shard_size=4", "progress=false",
                             "steps=[fit_kmeans,assign,pack]", "kmeans.levels=[4,3]", "kmeans.sample_size=500",
                             *extra])
    res = build(cfg)
    return {r.stage: r for r in res.reports}, res.globals["fit_kmeans"]


def test_extended_url_list_assigns_only_new_shards(tmp_path):
    out = tmp_path / "out"
    urls = write_urls(tmp_path / "in", [f"http://127.0.0.1:9/{i}.jpg" for i in range(40)])
    _tables(out, range(10))
    reports, fit = _build(out, urls)
    assert fit["reused"] is False and fit["leaves"] == 12
    assert reports["assign"].done == 10 and reports["pack"].done == 10
    assert reports["pack"].rows_out == 60

    urls = write_urls(tmp_path / "in", [f"http://127.0.0.1:9/{i}.jpg" for i in range(60)])
    _tables(out, range(10, 15))
    reports, fit = _build(out, urls)
    assert fit["reused"] is True
    assert (reports["assign"].done, reports["assign"].skipped) == (5, 10)
    assert (reports["pack"].done, reports["pack"].skipped) == (5, 10)

    reports, fit = _build(out, urls, "kmeans.refit=true")
    assert fit["reused"] is False
    assert reports["assign"].done == 15
