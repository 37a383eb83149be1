"""kmeans.fit: auto — local below kmeans.local_max_mib, per_parent above; recorded; the same tree as the
explicit fit; frozen trees stay frozen; bad values exit 2 naming the key; explicit local warns when far over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.cli import main
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit_choice import MIB, fit_signature, resolve_fit
from regionset.pipelines.preflight.models import model_checks
from regionset.pipelines.tools.status import collect_status, print_status
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture, write_region_shard

# 3 shards × 200 regions at d = 8: the whole sample (600 rows) is 600 × 8 × 4 = 19,200 B = 0.0183 MiB
BELOW, ABOVE = 0.02, 0.018  # local_max_mib just above / just below it


def _cfg(out, **kw) -> BuildConfig:
    return BuildConfig(output=str(out), progress=False,
                       kmeans=KMeansConfig(**{"levels": (4, 3), "sample_size": 600, **kw}))


def test_auto_picks_local_at_or_below_the_limit_and_per_parent_above(tmp_path):
    write_mixture(tmp_path, 3, 200, d=8)
    exact = 600 * 8 * 4 / MIB
    for limit, fit in ((BELOW, "local"), (exact, "local"), (ABOVE, "per_parent")):
        choice = resolve_fit(tmp_path, KMeansConfig(sample_size=600, local_max_mib=limit), [0, 1, 2])
        assert (choice.fit, choice.sample_rows, choice.dim) == (fit, 600, 8), limit
    # the sample is min(sample_size, rows available): 300 rows fit under ABOVE
    assert resolve_fit(tmp_path, KMeansConfig(sample_size=300, local_max_mib=ABOVE), [0, 1, 2]).fit == "local"
    assert resolve_fit(tmp_path, KMeansConfig(sample_size=10**9, local_max_mib=ABOVE), [0, 1, 2]).sample_rows == 600
    # explicit fits are kept whatever the size; the default limit keeps tiny data local
    assert resolve_fit(tmp_path, KMeansConfig(fit="per_parent"), [0, 1, 2]).fit == "per_parent"
    assert resolve_fit(tmp_path, KMeansConfig(fit="local", local_max_mib=1e-9), [0, 1, 2]).fit == "local"
    assert resolve_fit(tmp_path, KMeansConfig(), [0, 1, 2]).fit == "local"
    assert resolve_fit(tmp_path / "empty", KMeansConfig(), [0]).fit == "local"  # no embeddings: local skips


def test_unembedded_regions_do_not_count(tmp_path):
    x = np.ones((100, 8), np.float32)
    write_region_shard(tmp_path, 0, np.arange(100), x, skip_embedding=set(range(40)))  # 60 embedded
    choice = resolve_fit(tmp_path, KMeansConfig(sample_size=1000), [0])
    assert (choice.sample_rows, choice.dim) == (60, 8)
    text = resolve_fit(tmp_path, KMeansConfig(sample_size=1000, sources=("text",)), [0])
    assert text.sample_rows == 0  # no text regions in this shard


@pytest.mark.parametrize(("limit", "fit"), [(BELOW, "local"), (ABOVE, "per_parent")])
def test_auto_records_the_fit_and_builds_the_explicit_fits_tree(tmp_path, limit, fit):
    write_mixture(tmp_path / "auto", 3, 200, d=8)
    write_mixture(tmp_path / "explicit", 3, 200, d=8)
    auto = run_fit_kmeans(tmp_path / "auto", _cfg(tmp_path / "auto", local_max_mib=limit), [0, 1, 2])
    explicit = run_fit_kmeans(tmp_path / "explicit", _cfg(tmp_path / "explicit", fit=fit), [0, 1, 2])
    assert (auto["fit"], auto["fit_requested"]) == (fit, "auto")
    assert (explicit["fit"], explicit["fit_requested"]) == (fit, fit)
    assert auto["centroids_sha256"] == explicit["centroids_sha256"]
    ta, te = ClusterTree.load(tmp_path / "auto" / "kmeans"), ClusterTree.load(tmp_path / "explicit" / "kmeans")
    for a, b in zip(ta.centroids + ta.parents, te.centroids + te.parents, strict=True):
        assert np.array_equal(a, b)
    meta = json.loads((tmp_path / "auto" / "kmeans" / "kmeans.json").read_text())
    assert (meta["fit"], meta["fit_requested"]) == (fit, "auto")
    assert meta["fit_rule"] == {"sample_rows": 600, "dim": 8, "sample_mib": 0.018, "local_max_mib": limit}
    assert meta["signature"] == ta.meta["signature"] == te.meta["signature"]  # what ran, not what was asked


def test_status_shows_the_fit(tmp_path, capsys):
    write_mixture(tmp_path, 3, 200, d=8)
    (tmp_path / "_state").mkdir()
    run_fit_kmeans(tmp_path, _cfg(tmp_path, local_max_mib=ABOVE), [0, 1, 2])
    assert collect_status(tmp_path)["kmeans"]["fit"] == "per_parent"
    print_status(tmp_path)
    err = " ".join(capsys.readouterr().err.split())
    assert "fit per_parent (auto: sample 600 × 8 float32 = 0.018 MiB > kmeans.local_max_mib 0.018)" in err


def test_frozen_trees_stay_frozen_under_auto(tmp_path):
    write_mixture(tmp_path, 3, 200, d=8)
    local = run_fit_kmeans(tmp_path, _cfg(tmp_path, fit="local", sample_size=700), [0, 1, 2])
    # the new default reuses a tree fitted by explicit local (trees of before the option too) ...
    again = run_fit_kmeans(tmp_path, _cfg(tmp_path, sample_size=700), [0, 1, 2])
    assert again["reused"] and (again["fit"], again["fit_requested"]) == ("local", "auto") and again["centroids_sha256"] == local["centroids_sha256"]
    # ... and growing data that would now resolve per_parent (700 rows over the limit) does not refit
    write_region_shard(tmp_path, 3, np.arange(600, 700), np.ones((100, 8), np.float32))
    assert resolve_fit(tmp_path, KMeansConfig(sample_size=700, local_max_mib=BELOW), [0, 1, 2, 3]).fit == "per_parent"
    grown = run_fit_kmeans(tmp_path, _cfg(tmp_path, sample_size=700, local_max_mib=BELOW), [0, 1, 2, 3])
    assert grown["reused"] and grown["centroids_sha256"] == local["centroids_sha256"]
    # an explicit other fit refits; auto then keeps that per_parent tree
    pp = run_fit_kmeans(tmp_path, _cfg(tmp_path, fit="per_parent", sample_size=700), [0, 1, 2, 3])
    assert not pp["reused"] and pp["fit"] == "per_parent"
    kept = run_fit_kmeans(tmp_path, _cfg(tmp_path, sample_size=700, local_max_mib=1e6), [0, 1, 2, 3])
    assert kept["reused"] and kept["centroids_sha256"] == pp["centroids_sha256"]
    assert fit_signature(KMeansConfig(fit="local", local_max_mib=1.0)) == fit_signature(KMeansConfig(fit="local"))


@pytest.mark.parametrize(("override", "needle"), [
    ("kmeans.fit=fast", "kmeans.fit: expected one of ['auto', 'local', 'per_parent'], got 'fast'"),
    ("kmeans.local_max_mib=0", "kmeans.local_max_mib: must be > 0"),
    ("kmeans.local_max_mib=-5", "kmeans.local_max_mib: must be > 0"),
    ("kmeans.local_max_mib=lots", "kmeans.local_max_mib: expected float, got 'lots'"),
])
def test_bad_values_exit_2_naming_the_key(capsys, override, needle):
    assert main(["config", override]) == 2
    err = capsys.readouterr().err
    assert needle in " ".join(err.split()), err


def test_preflight_warns_on_explicit_local_far_over_the_limit():
    def kmeans_check(**kw):
        cfg = BuildConfig(kmeans=KMeansConfig(**kw))  # the default model: d = 256
        return next(c for c in model_checks(cfg) if c.key == "kmeans.fit")

    big = kmeans_check(fit="local", sample_size=30_000_000)  # 28.6 GiB > 4 × 2 GiB
    assert big.status == "warn" and "use kmeans.fit=per_parent" in big.detail and "28.6 GiB" in big.detail
    assert kmeans_check(fit="local").status == "ok"  # the default 1M rows: 0.95 GiB
    assert kmeans_check(fit="local", sample_size=30_000_000, local_max_mib=8192).status == "ok"
    assert kmeans_check(sample_size=30_000_000).status == "ok"  # auto decides: nothing to warn about
