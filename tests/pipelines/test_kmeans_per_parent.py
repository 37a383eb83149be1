"""kmeans.fit: per_parent — worker count and shard order do not change the tree; a killed fit
refits only the unfinished parents; the driver holds the level-0 sample, not the whole sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from regionset.models.kmeans_index import ClusterTree
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.executors.config import ExecutorConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.distributed import WORK
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture

KM = KMeansConfig(levels=(4, 5), sample_size=1500, fit="per_parent")
ROOT = Path(__file__).resolve().parents[2]


def _fit(out, km=KM, processes=1, shards=(0, 1, 2, 3)):
    return run_fit_kmeans(out, BuildConfig(kmeans=km, executor=ExecutorConfig(processes=processes)), list(shards))


def test_two_processes_and_shard_order_give_the_same_tree_bit_for_bit(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_mixture(a, 4, 500, d=8, k=30)
    write_mixture(b, 4, 500, d=8, k=30, order=list(np.random.default_rng(1).permutation(2000)))
    one = _fit(a)
    two = _fit(b, processes=2, shards=(3, 1, 0, 2))
    assert one["centroids_sha256"] == two["centroids_sha256"] and one["sizes"] == [4, 20]
    ta, tb = ClusterTree.load(a / "kmeans"), ClusterTree.load(b / "kmeans")
    for ca, cb in zip(ta.centroids, tb.centroids):
        assert np.array_equal(ca, cb)
    assert ta.meta["fit"] == "per_parent" and ta.meta["sample_rows"] == 1500
    assert not (a / WORK).exists()  # partitions and markers are removed once the tree is in place
    # every leaf's parent is the level-0 cell it was fitted in; leaves are unit-norm (spherical)
    assert sorted(set(ta.parents[1].tolist())) == [0, 1, 2, 3]
    np.testing.assert_allclose(np.linalg.norm(ta.centroids[1], axis=1), 1, atol=1e-5)
    other_seed = _fit(a, KMeansConfig(**{**KM.__dict__, "seed": 3}))
    assert other_seed["centroids_sha256"] != one["centroids_sha256"]


def test_three_levels_and_no_refinement(tmp_path):
    write_mixture(tmp_path, 2, 600, d=8, k=40)
    got = _fit(tmp_path, KMeansConfig(levels=(3, 2, 2), sample_size=1200, fit="per_parent", refine_iters=0),
               shards=(0, 1))
    tree = ClusterTree.load(tmp_path / "kmeans")
    assert got["sizes"] == [3, 6, 12]
    # each parent's subtree is one block of ids at every level, in parent order
    assert np.all(np.diff(tree.parents[1]) >= 0) and np.all(np.diff(tree.parents[2]) >= 0)
    assert set(tree.parents[1].tolist()) == {0, 1, 2} and set(tree.parents[2].tolist()) == set(range(6))
    paths, _ = tree.assign(np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    assert np.array_equal(tree.parents[2][paths[:, 2]], paths[:, 1])


def _run(out: Path, failpoint: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from regionset.pipelines.config import BuildConfig
        from regionset.pipelines.kmeans.config import KMeansConfig
        from tests.helpers import run_fit_kmeans
        km = KMeansConfig(levels=(4, 5), sample_size=1500, fit="per_parent")
        print(json.dumps(run_fit_kmeans(Path({str(out)!r}), BuildConfig(kmeans=km), [0, 1, 2, 3])))
        print(json.dumps(json.loads((Path({str(out)!r}) / "kmeans" / "kmeans.json").read_text())["parents_refitted"]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGIONSET_FAILPOINT": failpoint}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)


def test_kill_during_parent_fits_resumes_only_unfinished_parents(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for out in (clean, killed):
        write_mixture(out, 4, 500, d=8, k=30)
    ref = _run(clean)
    assert ref.returncode == 0, ref.stderr
    first = _run(killed, "kmeans:parent_fitted")  # SIGKILL right after the first parent's marker
    assert first.returncode == -9
    assert len(list((killed / WORK).glob("parent-*.npz"))) == 1
    again = _run(killed)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1]) == 3  # only the 3 unfinished parents
    assert json.loads(ref.stdout.splitlines()[-1]) == 4
    assert json.loads(again.stdout.splitlines()[-2])["centroids_sha256"] == \
        json.loads(ref.stdout.splitlines()[-2])["centroids_sha256"]


MEMORY = """
import ctypes, json, sys
from pathlib import Path
import numpy as np
import pyarrow as pa
import faiss  # noqa: F401  (imports before the baseline)
import regionset.pipelines.kmeans.distributed as dist
from regionset.pipelines.executors.factory import make_executor  # the fit's executor: 19 MiB of imports
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_kmeans
from regionset.pipelines.kmeans.sample import iter_embeddings, row_priority
out, fit, shards = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
np.zeros((256, 256)) @ np.zeros((256, 256))
for ids, _ in iter_embeddings(out, [0], ("object",)):  # Parquet/Arrow and pandas hashing warmed up
    row_priority(ids, 0)
held = {"level0": 0, "parent": 0}  # what the fit reads: its level-0 sample and its largest parent
read_sample, parent_points = dist.read_sample, dist.parent_points
def level0(*a):
    x, p = read_sample(*a)
    held["level0"] = x.nbytes
    return x, p
def parent(*a):
    x = parent_points(*a)
    held["parent"] = max(held["parent"], x.nbytes)
    return x
dist.read_sample, dist.parent_points = level0, parent
def kib(key):  # /proc/self/status: VmRSS now, VmHWM its high-water mark
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0])
ctypes.CDLL("libc.so.6").malloc_trim(0)  # the baseline: the warm-up's freed memory given back
pa.default_memory_pool().release_unused()
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM: the imports' transient peak is not the fit's
base = kib("VmRSS")
km = KMeansConfig(levels=(16, 4), sample_size=10**6, niter=4, refine_iters=1, fit=fit,
                  max_points_per_centroid=64, refit=True)
cfg = BuildConfig(kmeans=km)
with make_executor(cfg.executor, cfg.progress) as ex:
    fit_kmeans(out, km, ex, list(range(shards)), progress=cfg.progress)
print(json.dumps({"grew": (kib("VmHWM") - base) * 1024, **held}))
"""
D, PER_SHARD = 128, 7_500
SHARD_BYTES = PER_SHARD * D * 4  # one shard's rows decoded to float32: 3.8 MB
MARGIN = 48 << 20
"""What the driver holds beyond the level-0 sample, one parent and one shard's float32 rows, whatever
the data size (measured 2026-11-30, ``bench/kmeans_driver_memory.py``, docs/kmeans-labels.md
"Per-parent fit": 27–36 MiB over 6 runs at 16 and 32 shards). Its peak is the partition pass:
~12.5 MiB of shared-library code first run by the fit (FAISS, OpenBLAS, DuckDB: file pages), ~22 MiB
of Arrow's pool (mimalloc) while one record batch is decoded (the pool's own peak is 8.2 MB for a
1.9 MB fp16 column), the shard's rows twice (read, then sorted by parent) and a few MiB of glibc
arenas. Each is a fixed cost or bounded by one record batch (``sample.BATCH_ROWS`` × d), not by the
number of shards or rows."""
NOISE = 8 << 20  # run-to-run spread of the peak at one size (measured: up to 4 MiB)


def _grew(out: Path, fit: str, shards: int) -> dict[str, int]:
    r = subprocess.run([sys.executable, "-c", MEMORY, str(out), fit, str(shards)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.slow
def test_driver_memory_is_bounded_by_the_level_0_sample_and_one_parent(tmp_path):
    """The issue's bound: the driver's peak growth stays under the level-0 sample + one parent's
    points + one shard's decoded rows + a fixed margin, and does not grow with the data."""
    write_mixture(tmp_path, 32, PER_SHARD, d=D, k=64)  # sample 240,000 × 128 × 4 B = 123 MB, 32 × one shard
    half = _grew(tmp_path, "per_parent", 16)  # the first 16 shards: the same tree shape on half the data
    full = _grew(tmp_path, "per_parent", 32)
    for got in (half, full):
        bound = got["level0"] + got["parent"] + SHARD_BYTES + MARGIN
        assert got["grew"] < bound, (got, bound)
        assert 0 < got["level0"] < got["parent"] < 240_000 * D * 4 / 8  # far less than the sample
    # doubling the data (+61 MB of sample) moves the peak by what the larger parent adds, no more
    # (measured: +0.6 to +4.4 MiB, for a largest parent 8.2 MB larger)
    assert full["grew"] - half["grew"] < full["parent"] - half["parent"] + NOISE, (half, full)
    local = _grew(tmp_path, "local", 32)["grew"]
    assert local > 240_000 * D * 4  # the in-driver fit holds the whole sample (and copies)
    assert full["grew"] < local / 8, (full, local)


def test_map_reduce_refinement_matches_the_in_driver_refinement(tmp_path):
    import copy
    from collections import Counter

    from regionset.pipelines.kmeans.distributed import fit_per_parent, parent_points, refine_parents
    from regionset.pipelines.kmeans.params import FitParams
    from regionset.pipelines.kmeans.tree import refine

    write_mixture(tmp_path, 3, 500, d=8, k=30)
    p0 = FitParams(refine_iters=0)
    got = fit_per_parent(tmp_path, [0, 1, 2], ("object",), 1500, lambda n: [4, 20], p0, {"t": 1})
    base = got["result"]
    work = tmp_path / WORK
    x = np.concatenate([parent_points(work, j) for j in range(4)])
    p2 = FitParams(refine_iters=2)
    driver, mapped = copy.deepcopy(base), copy.deepcopy(base)
    driver.stats, mapped.stats = Counter(), Counter()
    refine(x, driver, p2)
    inertia, sizes = refine_parents(str(work), mapped, p2, [0, 1, 2, 3], None)
    for a, b in zip(driver.centroids, mapped.centroids):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # float64 sums in another order
    assert all(np.array_equal(a, b) for a, b in zip(driver.parents, mapped.parents))
    assert sizes.sum() == 1500 and inertia > 0
    assert not np.array_equal(base.centroids[-1], mapped.centroids[-1])  # refinement moved the leaves


def test_refinement_tasks_carry_a_path_not_the_leaves(tmp_path):
    import pickle

    from regionset.pipelines.executors.local import LocalExecutor
    from regionset.pipelines.kmeans.distributed import fit_per_parent
    from regionset.pipelines.kmeans.params import FitParams

    write_mixture(tmp_path, 3, 500, d=8, k=30)
    ex = LocalExecutor(1, show_progress=False)
    sizes: list[int] = []
    iter_calls = ex.iter_calls

    def recorded(fn, jobs):
        if fn.__name__ == "refine_map":
            sizes.extend(len(pickle.dumps(job)) for job in jobs)
        return iter_calls(fn, jobs)

    ex.iter_calls = recorded  # run_calls goes through it too
    fit_per_parent(tmp_path, [0, 1, 2], ("object",), 1500, lambda n: [4, 200], FitParams(refine_iters=2), {"t": 1}, ex)
    assert len(sizes) == 3 * 4 and max(sizes) < 1024  # 200 leaves × 8 floats would be 6.4 kB per task
    assert not list((tmp_path / WORK).glob("leaves-*.npy"))  # each iteration's file is removed after it
