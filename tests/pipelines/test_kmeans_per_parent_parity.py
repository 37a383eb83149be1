"""kmeans.fit: per_parent on every executor: local (1 and 2 processes), Ray tasks and Spark
partitions fit the same tree bit for bit, whatever the shard order, and on Ray/Spark the
per-parent fits and the refinement maps really run as the executor's tasks (``run_calls``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.config import load_config
from regionset.pipelines.executors.factory import make_executor
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture

OVERRIDES = ["kmeans.fit=per_parent", "kmeans.levels=[4,5]", "kmeans.sample_size=1500", "progress=false",
             "executor.ray.num_cpus=2", "executor.spark.master=local[2]"]
SHARDS = [0, 1, 2, 3]


def _fit(out, name: str, processes: int = 1, shards=SHARDS) -> tuple[dict, ClusterTree, list[str]]:
    cfg = load_config(None, [*OVERRIDES, f"output={out}", f"executor.name={name}", f"executor.processes={processes}"])
    calls: list[str] = []
    with make_executor(cfg.executor, cfg.progress) as ex:
        iter_calls = ex.iter_calls

        def counted(fn, jobs):  # what went through the executor, by task function
            calls.extend([fn.__name__] * len(jobs))
            return iter_calls(fn, jobs)

        ex.iter_calls = counted  # run_calls goes through it too
        got = run_fit_kmeans(out, cfg, list(shards), executor=ex)
    return got, ClusterTree.load(out / "kmeans"), calls


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("pp") / "local1"
    write_mixture(out, 4, 500, d=8, k=30)
    return _fit(out, "local")


def _same(tree: ClusterTree, ref: ClusterTree) -> None:
    assert len(tree.centroids) == len(ref.centroids)
    for a, b, pa, pb in zip(tree.centroids, ref.centroids, tree.parents, ref.parents):
        assert np.array_equal(a, b) and np.array_equal(pa, pb)


def test_local_two_processes_and_another_shard_order_match_in_process(tmp_path, reference):
    ref_got, ref_tree, ref_calls = reference
    assert ref_got["sizes"] == [4, 20] and ref_tree.meta["executor"] == "local"
    assert ref_calls.count("fit_parent") == 4 and ref_calls.count("refine_map") == 4 * 3  # 2 iters + final pass
    write_mixture(tmp_path, 4, 500, d=8, k=30, order=list(np.random.default_rng(1).permutation(2000)))
    got, tree, _ = _fit(tmp_path, "local", processes=2, shards=[3, 1, 0, 2])
    assert got["centroids_sha256"] == ref_got["centroids_sha256"]
    _same(tree, ref_tree)


@pytest.mark.parametrize("name", [pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_distributed_executor_matches_local(name, tmp_path, reference):
    if importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed (pip install 'regionset[{name}]')")
    ref_got, ref_tree, _ = reference
    write_mixture(tmp_path, 4, 500, d=8, k=30, order=list(np.random.default_rng(2).permutation(2000)))
    got, tree, calls = _fit(tmp_path, name, shards=[2, 0, 3, 1])
    assert calls.count("fit_parent") == 4 and calls.count("refine_map") == 12
    assert tree.meta["executor"] == name
    assert got["centroids_sha256"] == ref_got["centroids_sha256"]
    _same(tree, ref_tree)
