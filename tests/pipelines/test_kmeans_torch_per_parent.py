"""kmeans.fit: per_parent with kmeans.backend: torch: the same tree on every executor and shard order
(bit for bit, on the CPU), the faiss backend's quality, and a killed fit refits only the unfinished
parents and ends with the tree of an uninterrupted one."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree, nearest_centroids
from regionset.pipelines.config import load_config
from regionset.pipelines.executors.factory import make_executor
from regionset.pipelines.kmeans.distributed import WORK
from regionset.pipelines.kmeans.partition import read_sample
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture

OVERRIDES = ["kmeans.fit=per_parent", "kmeans.levels=[4,5]", "kmeans.sample_size=1500", "progress=false",
             "executor.ray.num_cpus=2", "executor.spark.master=local[2]"]
SHARDS = [0, 1, 2, 3]
ROOT = Path(__file__).resolve().parents[2]


def _fit(out: Path, name: str = "local", processes: int = 1, shards=SHARDS, backend: str = "torch") -> dict:
    cfg = load_config(None, [*OVERRIDES, f"output={out}", f"executor.name={name}",
                             f"executor.processes={processes}", f"kmeans.backend={backend}"])
    with make_executor(cfg.executor, cfg.progress) as ex:
        return run_fit_kmeans(out, cfg, list(shards), executor=ex)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("tpp") / "local1"
    write_mixture(out, 4, 500, d=8, k=30)
    return out, _fit(out)


def _same_tree(out: Path, ref: Path) -> None:
    a, b = ClusterTree.load(out / "kmeans"), ClusterTree.load(ref / "kmeans")
    assert a.meta["backend"] == "torch" and a.meta["torch_device"] == "cpu"
    for ca, cb, pa, pb in zip(a.centroids, b.centroids, a.parents, b.parents):
        assert np.array_equal(ca, cb) and np.array_equal(pa, pb)


def test_torch_per_parent_two_processes_and_shard_order_match(tmp_path, reference):
    ref_out, ref_got = reference
    assert ref_got["sizes"] == [4, 20] and ref_got["fit"] == "per_parent"
    write_mixture(tmp_path, 4, 500, d=8, k=30, order=list(np.random.default_rng(1).permutation(2000)))
    got = _fit(tmp_path, processes=2, shards=[3, 1, 0, 2])
    assert got["centroids_sha256"] == ref_got["centroids_sha256"]
    _same_tree(tmp_path, ref_out)


@pytest.mark.parametrize("name", [pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_torch_per_parent_distributed_executor_matches_local(name, tmp_path, reference):
    if importlib.util.find_spec("ray" if name == "ray" else "pyspark") is None:
        pytest.skip(f"{name} is not installed (pip install 'regionset[{name}]')")
    ref_out, ref_got = reference
    write_mixture(tmp_path, 4, 500, d=8, k=30, order=list(np.random.default_rng(2).permutation(2000)))
    got = _fit(tmp_path, name, shards=[2, 0, 3, 1])
    assert got["centroids_sha256"] == ref_got["centroids_sha256"]
    _same_tree(tmp_path, ref_out)


def test_torch_per_parent_quality_matches_faiss(tmp_path, reference):
    ref_out, _ = reference
    write_mixture(tmp_path, 4, 500, d=8, k=30)
    _fit(tmp_path, backend="faiss")
    x, _ = read_sample(ref_out, SHARDS, ("object",), 0, (1 << 64) - 1, True)  # every row, normalised
    inertia = {name: float(nearest_centroids(x, ClusterTree.load(out / "kmeans").centroids[-1], "numpy")[1].mean())
               for name, out in (("torch", ref_out), ("faiss", tmp_path))}
    assert ClusterTree.load(tmp_path / "kmeans").meta["backend"] == "faiss"
    assert abs(inertia["torch"] / inertia["faiss"] - 1) <= 0.01, inertia


def _run(out: Path, failpoint: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from regionset.pipelines.config import BuildConfig
        from regionset.pipelines.kmeans.config import KMeansConfig
        from tests.helpers import run_fit_kmeans
        km = KMeansConfig(levels=(4, 5), sample_size=1500, fit="per_parent", backend="torch")
        print(json.dumps(run_fit_kmeans(Path({str(out)!r}), BuildConfig(kmeans=km), [0, 1, 2, 3])))
        print(json.dumps(json.loads((Path({str(out)!r}) / "kmeans" / "kmeans.json").read_text())["parents_refitted"]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGIONSET_FAILPOINT": failpoint}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_torch_kill_during_parent_fits_resumes_only_unfinished_parents(tmp_path, reference):
    ref_out, ref_got = reference
    killed = tmp_path / "killed"
    write_mixture(killed, 4, 500, d=8, k=30)
    first = _run(killed, "kmeans:parent_fitted")  # SIGKILL right after the first parent's marker
    assert first.returncode == -9, first.stderr
    assert len(list((killed / WORK).glob("parent-*.npz"))) == 1
    again = _run(killed)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1]) == 3  # only the 3 unfinished parents
    assert json.loads(again.stdout.splitlines()[-2])["centroids_sha256"] == ref_got["centroids_sha256"]
