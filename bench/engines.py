"""Executors side by side: rows/s of one stage on local, ray and spark, and each engine's start-up.

A synthetic corpus is served on loopback and built with the local executor up to the stage under
test (default ``embed`` with the tiny open_clip config, random weights), once. Then, for every
engine: start it (``engine start``: ray.init / SparkSession, once per process), run the stage over
every shard once cold (``first run``), then ``--runs`` times over every shard (``all shards``) and
over one shard (``1 shard``: the per-job fixed cost, e.g. actor start-up and model load, plus one
shard's work), deleting the stage's outputs before each run. rows/s counts the rows the stage wrote
(embeddings: one per region) over the median all-shards time.

    python bench/engines.py [--images 48] [--shard-size 6] [--stage embed] [--runs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENGINES = ("local", "local-2proc", "ray", "spark")


def _corpus(n: int) -> list[tuple[str, bytes, str]]:
    """``n`` images cycled from the demo corpus (photos and text pages) under distinct names."""
    from regionset.pipelines.tools.demo.corpus import demo_images

    demo = demo_images()
    return [(f"{i:04d}-{demo[i % len(demo)].name}", demo[i % len(demo)].data, demo[i % len(demo)].caption)
            for i in range(n)]


def prepare(root: Path, images: int, shard_size: int, stage: str, threads: int):
    """Serve the corpus, build up to ``stage`` with the local executor; return (cfg, stage, shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from regionset.pipelines.build import build
    from regionset.pipelines.config import load_config
    from regionset.pipelines.definition import build_steps
    from regionset.pipelines.steps import FUSED, STEP_NAMES
    from regionset.pipelines.tools.demo.server import LoopbackServer

    upto = [n for n in STEP_NAMES[: STEP_NAMES.index(stage) + 1] if n not in FUSED]
    with LoopbackServer() as server:
        corpus = _corpus(images)
        urls = [server.add(name, data) for name, data, _ in corpus]
        pq.write_table(pa.table({"url": urls, "caption": [c for _, _, c in corpus]}), root / "urls.parquet")
        over = [f"output={root / 'out'}", f"input.path={root / 'urls.parquet'}", f"input.shard_size={shard_size}",
                "download.allow_loopback=true", "download.timeout=5", "progress=false", f"steps={upto}"]
        for name in ("embed", "detect"):
            if name in upto and threads:
                over.append(f"{name}.resources.cpus={threads}")
        cfg = load_config(None, over)
        result = build(cfg)
    target = next(s for s in build_steps(cfg) if s.name == stage)
    return cfg, target, result.shards


def make(engine: str, cfg):
    from regionset.pipelines.executors.config import RayConfig, SparkConfig

    if engine.startswith("local"):
        from regionset.pipelines.executors.local import LocalExecutor

        return LocalExecutor(processes=2 if engine == "local-2proc" else 1, show_progress=False)
    if engine == "ray":
        from regionset.pipelines.executors.ray_data import RayExecutor

        return RayExecutor(RayConfig(num_cpus=os.cpu_count() or 2), show_progress=False)
    from regionset.pipelines.executors.spark import SparkExecutor

    return SparkExecutor(SparkConfig(master=f"local[{os.cpu_count() or 2}]"), show_progress=False)


def _reset(out: Path, stage) -> None:
    shutil.rmtree(out / stage.output, ignore_errors=True)
    shutil.rmtree(out / "_state" / stage.name, ignore_errors=True)


def measure(engine: str, cfg, stage, shards: list[int], runs: int) -> dict:
    """Start the engine, run the stage ``1 + runs`` times; times in seconds."""
    out = Path(cfg.output)
    ex = make(engine, cfg)
    t0 = time.perf_counter()
    if engine == "ray":
        ex._ensure_ray()
    elif engine == "spark":
        ex.session()
    start_s = time.perf_counter() - t0
    def timed(subset: list[int]) -> tuple[float, int]:
        _reset(out, stage)
        t = time.perf_counter()
        report = ex.run_stage(stage, out, subset)
        assert report.done == len(subset), report
        return time.perf_counter() - t, report.rows_out

    try:
        first_s, rows = timed(shards)
        full = [timed(shards)[0] for _ in range(runs)]
        one = [timed(shards[:1])[0] for _ in range(runs)]
    finally:
        getattr(ex, "close", lambda: None)()
    med = statistics.median(full)
    return {"engine": engine, "start_s": start_s, "first_s": first_s, "one_s": statistics.median(one),
            "median_s": med, "rows": rows, "rows_per_s": rows / med}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--shard-size", type=int, default=6)
    p.add_argument("--stage", default="embed", help="the per-shard stage to time (upstream is built once)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="threads per worker, as resources.cpus (0: the worker's share)")
    p.add_argument("--engines", default=",".join(ENGINES))
    args = p.parse_args()
    for k, v in {"YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
                 "YOLO_CONFIG_DIR": tempfile.gettempdir(), "MPLCONFIGDIR": tempfile.gettempdir()}.items():
        os.environ.setdefault(k, v)
    from regionset.pipelines.core.progress import print_table

    with tempfile.TemporaryDirectory(prefix="regionset-bench-engines-") as tmp:
        cfg, stage, shards = prepare(Path(tmp), args.images, args.shard_size, args.stage, args.threads)
        results = [measure(e, cfg, stage, shards, args.runs) for e in args.engines.split(",")]
    base = results[0]["rows_per_s"]
    rows = [[r["engine"], f"{r['start_s']:.1f}", f"{r['first_s']:.1f}", f"{r['one_s']:.1f}", f"{r['median_s']:.1f}",
             r["rows"], f"{r['rows_per_s']:.1f}", f"{r['rows_per_s'] / base:.2f}x"] for r in results]
    print_table(f"engines: stage {args.stage}, {args.images} images in {len(shards)} shards, "
                f"median of {args.runs} warm runs, {os.cpu_count()} CPUs",
                ["engine", "engine start s", "first run s", "1 shard s", "all shards s", "rows out", "rows/s",
                 f"vs {results[0]['engine']}"], rows)


if __name__ == "__main__":
    main()
