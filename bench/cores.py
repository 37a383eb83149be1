"""Scaling with cores: images/s and CPU-seconds per image of each stage and of the build, 1 vs 2 workers.

The demo corpus (photos and rendered text pages, cycled to ``--images`` under distinct names) is
served on loopback and built once with the local executor (every default step) into a prepared
folder. Then, per round, each of detect, ocr, embed and assign is redone over every shard with
``executor.processes`` = 1 and = 2 (``--workers``), and the whole build runs into a fresh folder with
each, side by side. Every measurement is a fresh ``python`` child (interpreter, imports, model load
included, as a user's run pays them); CPU-seconds are the child's and its workers' user + system
time (``RUSAGE_CHILDREN``; the loopback server's CPU in this process is not counted), and for a
stage also the CPU time its worker processes spent inside ``process`` (the per-image work without
start-up, imports and model load, which every extra worker pays again). Duplicates are
kept (``*.skip_duplicates=false``) since the cycled corpus repeats images. Prints the median of
``--runs`` rounds, the speed-up and CPU ratio against 1 worker, and the load average seen.

    python bench/cores.py --images 60 --shard-size 10 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("detect", "ocr", "embed", "assign")
CPU_COUNTER = "bench:process_cpu_us"


def _timed(cls):
    """``cls`` whose ``process`` adds the CPU time this worker process spent in it to a counter (the
    per-image work, without interpreter start, imports and model load)."""

    class Timed(cls):
        def process(self, table):
            t = time.process_time()
            result = super().process(table)
            self.counters[CPU_COUNTER] += int((time.process_time() - t) * 1e6)
            return result

    Timed.__name__ = Timed.__qualname__ = f"Timed{cls.__name__}"
    globals()[Timed.__name__] = Timed  # picklable by name in spawned workers
    return Timed


def _timed_stage(stage):
    return TIMED[stage.name](stage.config)


def _load_timed() -> dict:
    from stages.assign import AssignStage
    from stages.detect import DetectStage
    from stages.embed import EmbedStage
    from stages.ocr import OcrStage

    return {c.name: _timed(c) for c in (DetectStage, OcrStage, EmbedStage, AssignStage)}


TIMED = _load_timed()
KEEP_DUPLICATES = [f"{s}.skip_duplicates=false" for s in ("detect", "ocr", "embed")]


def _overrides(out: Path, urls: Path, shard_size: int, workers: int) -> list[str]:
    from pipelines.demo.run import demo_overrides

    return demo_overrides(out, urls, shard_size) + KEEP_DUPLICATES + ["progress=false",
                                                                       f"executor.processes={workers}"]


def _child(args) -> None:
    """One measurement in this fresh process: a stage redone on every shard, or a whole build."""
    from pipelines.build import build
    from pipelines.config import load_config
    from pipelines.definition import build_steps
    from pipelines.executors.local import LocalExecutor
    from pipelines.shards import STATE_DIR

    cfg = load_config(None, _overrides(Path(args.out), Path(args.urls), args.shard_size, args.workers))
    if args.child == "build":
        build(cfg)
        return
    stage = _timed_stage(next(s for s in build_steps(cfg) if s.name == args.child))
    shutil.rmtree(Path(args.out) / STATE_DIR / stage.name, ignore_errors=True)
    shards = [int(x) for x in args.shards.split(",")]
    with LocalExecutor(args.workers, show_progress=False) as ex:
        report = ex.run_stage(stage, Path(args.out), shards)
    assert report.done == len(shards), report
    print(json.dumps({"process_cpu": report.counters[CPU_COUNTER] / 1e6}))


def _measure(what: str, out: Path, urls: Path, shard_size: int, workers: int,
             shards: list[int]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the child and its workers, CPU seconds inside the stage's
    ``process``: NaN for a build) of one child run."""
    cmd = [sys.executable, __file__, "--child", what, "--out", str(out), "--urls", str(urls),
           "--shard-size", str(shard_size), "--workers", str(workers), "--shards", ",".join(map(str, shards))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = done.stdout.strip().splitlines()[-1:] if what != "build" else []
    work = json.loads(last[0])["process_cpu"] if last else float("nan")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), work


def _n_images(out: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
               for p in (out / "images").glob("*.parquet"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--shard-size", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (the first is the baseline)")
    ap.add_argument("--stages", default=",".join(STAGES) + ",build")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--urls", default="", help=argparse.SUPPRESS)
    ap.add_argument("--shards", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.workers = int(args.workers)
        _child(args)
        return 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.engines import _corpus
    from pipelines.build import build
    from pipelines.config import load_config
    from pipelines.demo.server import LoopbackServer

    workers = [int(w) for w in args.workers.split(",")]
    todo = args.stages.split(",")
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="regionset-cores-") as tmp, LoopbackServer() as server:
        root = Path(tmp)
        corpus = _corpus(args.images)
        urls = [server.add(name, data) for name, data, _ in corpus]
        url_file = root / "urls.parquet"
        pq.write_table(pa.table({"url": urls, "caption": [c for _, _, c in corpus]}), url_file)
        prepared = root / "prepared"
        shards = build(load_config(None, _overrides(prepared, url_file, args.shard_size, 1))).shards
        n = _n_images(prepared)
        print(f"corpus: {n} images in shards of {args.shard_size}; workers {workers}; "
              f"{os.cpu_count()} cores", flush=True)
        for r in range(args.runs):
            for what in todo:
                for w in workers:
                    out = prepared if what != "build" else root / f"build-{r}-{w}"
                    wall, cpu, work = _measure(what, out, url_file, args.shard_size, w, shards)
                    results.setdefault((what, w), []).append((wall, cpu, work))
                    print(f"  round {r + 1} {what:6s} {w} worker(s): {wall:6.1f} s wall, {cpu:6.1f} CPU s, "
                          f"{work:6.1f} CPU s in process() (load {os.getloadavg()[0]:.1f})", flush=True)
                    loads.append(os.getloadavg()[0])
    base = workers[0]
    print(f"\nmedian of {args.runs} rounds, {n} images; load average (1 min) seen: "
          f"{min(loads):.1f}-{max(loads):.1f}, median {statistics.median(loads):.1f}")
    print("| step | workers | images/s | speed-up | CPU s / image (all) | vs 1 | CPU s / image (process) | vs 1 |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for what in todo:
        med = {w: [statistics.median(x[i] for x in results[(what, w)]) for i in range(3)] for w in workers}
        ips0, cpu0, work0 = n / med[base][0], med[base][1] / n, med[base][2] / n
        for w in workers:
            ips, cpu, work = n / med[w][0], med[w][1] / n, med[w][2] / n
            rows.append({"step": what, "workers": w, "images_per_s": ips, "cpu_s_per_image": cpu,
                         "process_cpu_s_per_image": work})
            print(f"| {what} | {w} | {ips:.2f} | {ips / ips0:.2f}x | {cpu:.3f} | {cpu / cpu0 - 1:+.1%} "
                  f"| {work:.3f} | {work / work0 - 1:+.1%} |")
    print(json.dumps({"images": n, "loads": loads, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
