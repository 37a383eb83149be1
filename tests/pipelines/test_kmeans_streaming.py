"""Streaming: fit + assign over >= 20 shards in a child process whose peak RSS does not grow with N."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

D = 64
PER_SHARD = 8_000

_CHILD = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from types import SimpleNamespace
    import faiss
    import numpy as np
    from regionset.pipelines.executors.local import LocalExecutor
    from regionset.pipelines.kmeans.config import KMeansConfig
    from regionset.pipelines.kmeans.fit import fit_kmeans
    from regionset.stages.assign import AssignConfig, AssignStage
    from tests.label_data import gaussian_mixture, write_region_shard

    faiss.omp_set_num_threads(1)
    root, per_shard, d = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = SimpleNamespace(kmeans=KMeansConfig(levels=(8, 4), sample_size=4000, niter=5))
    report = {}
    for name, shards in (("small", int(sys.argv[4])), ("big", int(sys.argv[5]))):
        out = root / name
        for s in range(shards):  # generated and written one shard at a time
            x, _ = gaussian_mixture(per_shard, k=30, d=d, seed=s)
            write_region_shard(out, s, np.arange(s * per_shard, (s + 1) * per_shard), x)
        fit = fit_kmeans(out, cfg.kmeans, LocalExecutor(show_progress=False), list(range(shards)))
        stage = AssignStage(AssignConfig(kmeans_dir=str(out / "kmeans")))
        rep = LocalExecutor(show_progress=False).run_stage(stage, out, list(range(shards)))
        report[name] = {"peak_kb": rss(), "rows": rep.rows_out, "sample": fit["sample"]}
    print(json.dumps(report))
""")


def test_peak_rss_is_bounded_independently_of_n(tmp_path):
    # One child process runs fit + assign on 6 shards (warming up BLAS, FAISS, Arrow pools), then on
    # 24 shards; the second run's extra peak RSS must stay far below the extra embeddings' size.
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(PER_SHARD), str(D), "6", "24"],
                         cwd=root, capture_output=True, text=True, timeout=600, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["big"]["rows"] == 24 * PER_SHARD and r["big"]["sample"] == 4000
    big_data_mb = 24 * PER_SHARD * D * 4 / 2**20  # float32 size of all the big run's embeddings
    growth_mb = (r["big"]["peak_kb"] - r["small"]["peak_kb"]) / 1024
    assert growth_mb < 0.25 * big_data_mb, r
