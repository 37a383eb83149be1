"""``assign.kmeans_dir`` as an object-store URL (issue 32): a tree fitted elsewhere, read from ``s3://``
by assign and checked by preflight; a prefix with no tree fails preflight naming the key."""

from __future__ import annotations

import pickle

from regionset.common.storage import as_path
from regionset.pipelines.config import BuildConfig, load_config
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import plan_stage, run_shard
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.preflight.models import model_checks
from regionset.stages.assign import AssignConfig, AssignStage
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture
from tests.s3server import s3  # noqa: F401 (fixture)


def test_assign_reads_its_tree_from_s3_and_preflight_checks_it(s3, tmp_path):  # noqa: F811
    write_mixture(tmp_path, 1, 60, d=8, seed=1)
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KMeansConfig(levels=(3, 2), sample_size=200)), [0])
    tree = s3.url("trees/t1")
    for f in (tmp_path / "kmeans").rglob("*"):
        if f.is_file():
            (as_path(tree) / f.relative_to(tmp_path / "kmeans").as_posix()).write_bytes(f.read_bytes())
    stage = AssignStage(AssignConfig(kmeans_dir=tree))
    [task] = plan_stage(stage, Output.of(tmp_path), [0])
    marker = run_shard(pickle.loads(pickle.dumps(stage)), Output.of(tmp_path), task)
    assert marker.counters["labelled:cluster"] == 60

    def tree_check(url):
        cfg = load_config(None, [f"output={tmp_path}", f"assign.kmeans_dir={url}", "steps=[assign]"])
        return [c for c in model_checks(cfg) if c.key == "assign.kmeans_dir"]

    assert not any(c.status == "fail" for c in tree_check(tree))
    [bad] = tree_check(s3.url("trees/none"))
    assert bad.status == "fail" and "no kmeans.json" in bad.detail
