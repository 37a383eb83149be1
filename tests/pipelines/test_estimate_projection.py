"""``regionset estimate``'s arithmetic on recorded unit costs (pipelines/tools/estimate/projection.py)."""

from __future__ import annotations

import math

import pytest

from regionset.pipelines.dedup.cost import BANDS_S_PER_HASH_AT_1M, HALVES_S_PER_HASH
from regionset.pipelines.kmeans.cost import KMEANS_MADDS_PER_CORE_S, kmeans_madds
from regionset.pipelines.tools.estimate.projection import project

# Unit costs as measure_sample records them (numbers of a 20-URL demo sample on 2 cores, rounded).
RECORDED = {
    "sample_images": 20, "regions_per_image": 5.0, "cores": 2, "shard_size": 8, "wall_s": 30.0, "cpu_s": 40.0,
    "stages": {
        "download": {"kind": "shard", "units": 20, "rows_out": 20, "unit": "image", "wall_s": 2.0, "setup_s": 0.5,
                     "cpu_s": 1.0, "gpu_s": 0.0, "inputs": ["input"], "output": "images"},
        "detect": {"kind": "shard", "units": 18, "rows_out": 90, "unit": "image", "wall_s": 9.0, "setup_s": 1.0,
                   "cpu_s": 18.0, "gpu_s": 0.0, "inputs": ["images"], "output": "regions/object"},
        "embed": {"kind": "shard", "units": 18, "rows_out": 100, "unit": "image", "wall_s": 4.0, "setup_s": 2.0,
                  "cpu_s": 8.0, "gpu_s": 0.0, "inputs": ["images", "regions/object"], "output": "embeddings"},
        "group_duplicates": {"kind": "global", "units": 20, "unit": "image", "wall_s": 0.3, "cpu_s": 0.3, "gpu_s": 0.0},
        "fit_kmeans": {"kind": "global", "units": 20, "unit": "image", "wall_s": 0.5, "cpu_s": 0.6, "gpu_s": 0.0},
        "assign": {"kind": "shard", "units": 100, "rows_out": 100, "unit": "region", "wall_s": 1.0, "setup_s": 0.0,
                   "cpu_s": 1.5, "gpu_s": 0.0, "inputs": ["embeddings"], "output": "labels"},
    },
    "tables": {"images": {"bytes": 1_400_000, "files": 3, "rows": 20, "per_shard": True},
               "embeddings": {"bytes": 80_000, "files": 3, "rows": 100, "per_shard": True},
               "kmeans": {"bytes": 14_000, "files": 4, "per_shard": False}},
    "peak_rss_mib": {"driver": 1400.0, "worker": 1400.0},
    "dedup": {"scheme": "auto", "auto_limit": 1_000_000, "halvings": 2},
    "kmeans": {"levels": [1000, 1000], "sample_size": 64_000_000, "niter": 20, "refine_iters": 2, "dim": 768,
               "search": "auto", "beam": 16, "beam_min_leaves": 16_384},
}


def test_same_shape_is_the_sample_scaled_and_not_extrapolated_within_10x():
    p = project(RECORDED, images=200)  # 10x the sample, on the sample's 2 cores
    d = p["stages"]["download"]
    assert d["units"] == 200 and not d["extrapolated"]
    assert d["wall_s"] == pytest.approx(2.0 / 20 * 200 + 0.5)  # per image wall x images + setup once
    assert d["cpu_s"] == pytest.approx(1.0 / 20 * 200)
    det = p["stages"]["detect"]
    assert det["units"] == 180 and det["wall_s"] == pytest.approx(9.0 / 18 * 180 + 1.0)
    assert "0.5 s/image wall on 2 cores" in det["from"] and "1 CPU-s/image" in det["from"]
    assert p["wall_s"] == pytest.approx(sum(s["wall_s"] for s in p["stages"].values()))
    assert p["core_hours"] == pytest.approx(sum(s["cpu_s"] for s in p["stages"].values()) / 3600)
    assert p["gpu_hours"] == 0.0


def test_more_workers_divide_wall_and_are_marked_extrapolated():
    two, eight = project(RECORDED, 200), project(RECORDED, 200, workers=8)
    s2, s8 = two["stages"]["detect"], eight["stages"]["detect"]
    assert s8["wall_s"] - 1.0 == pytest.approx((s2["wall_s"] - 1.0) / 4)  # setup is paid once either way
    assert s8["cpu_s"] == pytest.approx(s2["cpu_s"])  # the same work, spread wider
    assert s8["extrapolated"] and eight["reserved_core_hours"] == pytest.approx(eight["wall_s"] * 8 / 3600)


def test_bytes_per_table_scale_with_images_and_global_files_do_not():
    p = project(RECORDED, 2000)
    assert p["bytes"]["images"] == pytest.approx(1_400_000 * 100)
    assert p["bytes"]["embeddings"] == pytest.approx(80_000 * 100)
    assert p["bytes"]["kmeans"] == 14_000
    assert p["bytes_total"] == pytest.approx(sum(p["bytes"].values()))
    assert p["shards"] == math.ceil(2000 / 8) == 250
    assert p["files"] == 250 * 2 + 4


def test_request_counts_per_shard_stage():
    p = project(RECORDED, 8000)  # 1,000 shards
    # GET: one per input per shard: download 1 + detect 1 + embed 2 + assign 1
    assert p["requests"] == {"GET": 1000 * 5, "PUT": 1000 * 2 * 4, "LIST": 4}


def test_kmeans_follows_the_capacity_model():
    # docs/capacity.md: the per-parent fit term is 1,000 x 64,000 x 1,000 x 768 x 20 = 9.8e14 at 64M sampled
    m = kmeans_madds([1000, 1000], 64_000_000, 2.4e9, 768, 20, 2, 16)
    assert 64e6 * 1000 * 768 * 20 == pytest.approx(9.83e14, rel=1e-2)
    assert m["fit"] == pytest.approx(256_000 * 1000 * 768 * 20 + 9.83e14 + 3 * 64e6 * 1e6 * 768, rel=1e-2)
    assert m["assign"] == pytest.approx(2.4e9 * (1000 + 16 * 1000) * 768)  # 3.13e16, docs/capacity.md
    images = 450_000_000
    p = project(RECORDED, images, workers=1000)
    k = p["stages"]["fit_kmeans"]
    regions = 5.0 * images
    want = kmeans_madds([1000, 1000], 64_000_000, regions, 768, 20, 2, 16)["fit"]
    assert k["cpu_s"] == pytest.approx(0.6 + want / KMEANS_MADDS_PER_CORE_S)
    assert k["wall_s"] == pytest.approx(0.5 + want / KMEANS_MADDS_PER_CORE_S / 1000)
    assert k["extrapolated"] and "docs/capacity.md" in k["from"] and k["beam"] == 16
    # per_parent above local_max_mib: level-0 sample (256,000 x 3,072 B) + leaves (1M x 768 x 12 B) ~ 10 GB
    assert k["fit"] == "per_parent"
    assert k["driver_bytes"] == pytest.approx(256_000 * 768 * 4 + 1e6 * 768 * 12)


def test_auto_levels_and_exact_search_below_the_beam_threshold():
    costs = {**RECORDED, "kmeans": {**RECORDED["kmeans"], "levels": "auto", "sample_size": 1_000_000}}
    k = project(costs, 200)["stages"]["fit_kmeans"]
    assert k["units"] == 1000  # 200 images x 5 regions: the fit samples what there is
    assert k["beam"] == 0 and math.prod(k["levels"]) < 16_384
    assert k["fit"] == "local" and k["driver_bytes"] == pytest.approx(1.25 * 1000 * 768 * 4)


def test_rates_file_substitutes_a_gpu_rate():
    rates = {"embed": {"units_per_s": 50.0, "gpu": True}}
    p = project(RECORDED, 2000, gpus=4, rates=rates)
    e = p["stages"]["embed"]
    assert e["wall_s"] == pytest.approx(1800 / 50.0 / 4 + 2.0)  # 1,800 images at 50/s on each of 4 GPUs
    assert e["gpu_s"] == pytest.approx(1800 / 50.0) and e["cpu_s"] == 0.0
    assert "--rates" in e["from"] and p["gpu_hours"] == pytest.approx(36 / 3600)
    no_gpu = project(RECORDED, 2000, gpus=0, rates=rates)["stages"]["embed"]  # no GPU: the rate runs per core
    assert no_gpu["gpu_s"] == 0.0 and no_gpu["wall_s"] == pytest.approx(1800 / 50.0 / 2 + 2.0)


def test_every_figure_names_its_unit():
    p = project(RECORDED, 10_000_000, workers=64, gpus=8)
    for name, s in p["stages"].items():
        assert s["from"], name
        assert s["extrapolated"], name  # 500,000x the sample


def test_group_duplicates_is_the_samples_fixed_cost_plus_the_grouping_rate():
    g = project(RECORDED, 200)["stages"]["group_duplicates"]
    assert g["wall_s"] == pytest.approx(0.3 + 180 * BANDS_S_PER_HASH_AT_1M)  # not 10 x the sample's 0.3 s
    assert not g["extrapolated"] and "grouping rate" in g["from"]
    big = project(RECORDED, 10_000_000)["stages"]["group_duplicates"]  # dedup.scheme auto: halves past 1M
    fixed = 1.0 + 20 * BANDS_S_PER_HASH_AT_1M  # the model at the sample's size
    assert big["wall_s"] == pytest.approx(0.3 + 1.0 + 1e7 * HALVES_S_PER_HASH[2] - fixed)
    assert big["extrapolated"] and big["cpu_s"] == pytest.approx(0.3 + 2 * (big["wall_s"] - 0.3))
