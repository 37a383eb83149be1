"""Scaling with cores: images/s and CPU-seconds per image of each step and of the build, 1 vs 2 workers.

The demo corpus (photos and rendered text pages, cycled to ``--images`` under distinct names) is
served on loopback; per round, the whole build (every default step) runs into a fresh folder with
``executor.processes`` = each of ``--workers``, side by side. Each build is a fresh ``python`` child
(interpreter, imports, model load included, as a user's run pays them). Per step, the child records
its wall time and the CPU time of the driver (``RUSAGE_SELF``) plus its worker processes (from
``/proc/<pid>/stat``, so the pool the local executor keeps across steps is charged to the step that
used it); for detect, ocr, embed and assign also the CPU time the workers spent inside ``process``
(the per-image work, without start-up, imports and model load). The build's CPU is the child's and
its workers' user + system time (``RUSAGE_CHILDREN``; the loopback server in this process is not
counted). Duplicates are kept (``*.skip_duplicates=false``) since the cycled corpus repeats images.
Prints the median of ``--runs`` rounds, the speed-up and CPU ratio against the first worker count,
and the load average seen. A round is two builds (nothing else is built): at the ~0.7 CPU-s per
image measured on the 60-image corpus, ``--images 300 --shard-size 50 --runs 1`` should take about
5–6 minutes on an idle 2-core machine (an estimate; not run on an idle machine yet).

    python bench/cores.py --images 60 --shard-size 10 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
TICK = os.sysconf("SC_CLK_TCK")


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


def _load_timed() -> dict:
    from regionset.stages.assign import AssignStage
    from regionset.stages.detect import DetectStage
    from regionset.stages.embed import EmbedStage
    from regionset.stages.ocr import OcrStage

    return {c.name: _timed(c) for c in (DetectStage, OcrStage, EmbedStage, AssignStage)}


TIMED = _load_timed()
KEEP_DUPLICATES = [f"{s}.skip_duplicates=false" for s in ("detect", "ocr", "embed")]


def _overrides(out: Path, urls: Path, shard_size: int, workers: int) -> list[str]:
    from regionset.pipelines.tools.demo.run import demo_overrides

    return demo_overrides(out, urls, shard_size) + KEEP_DUPLICATES + ["progress=false",
                                                                       f"executor.processes={workers}"]


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class _StepClock:
    """Wall and CPU (driver + the executor's worker pool) of every step of one build."""

    def __init__(self, executor) -> None:
        self.executor, self.steps = executor, {}

    def _cpu(self) -> tuple[float, float, dict[int, float]]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        gone = resource.getrusage(resource.RUSAGE_CHILDREN)
        pool = getattr(self.executor, "pool", None)
        pids = [p.pid for p in pool._pool._processes.values()] if pool is not None else []
        return me.ru_utime + me.ru_stime, gone.ru_utime + gone.ru_stime, {p: _proc_cpu(p) for p in pids}

    def timed(self, name: str, fn, *args):
        t, (d0, g0, w0) = time.perf_counter(), self._cpu()
        result = fn(*args)
        d1, g1, w1 = self._cpu()
        workers = sum(v - w0.get(p, 0.0) for p, v in w1.items())
        self.steps[name] = {"wall": time.perf_counter() - t, "cpu": d1 - d0 + g1 - g0 + workers, "driver": d1 - d0}
        return result


def _child(args) -> None:
    """One build in this fresh process; prints per-step wall and CPU as JSON."""
    import regionset.pipelines.build as pb
    from regionset.pipelines.config import load_config
    from regionset.pipelines.executors.local import LocalExecutor

    cfg = load_config(None, _overrides(Path(args.out), Path(args.urls), args.shard_size, args.workers))
    steps_of = pb.build_steps
    pb.build_steps = lambda c: [TIMED[s.name](s.config) if s.name in TIMED else s for s in steps_of(c)]
    with LocalExecutor(args.workers, show_progress=False) as ex:
        clock = _StepClock(ex)
        run_stage, run_global = ex.run_stage, pb.run_global_step
        ex.run_stage = lambda stage, out, shards: clock.timed(stage.name, run_stage, stage, out, shards)
        pb.run_global_step = lambda step, *a: clock.timed(step.name, run_global, step, *a)
        result = pb.build(cfg, ex)
    for r in result.reports:
        clock.steps[r.stage]["process_cpu"] = r.counters.get(CPU_COUNTER, 0) / 1e6 if r.stage in TIMED else None
    me, gone = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"steps": clock.steps, "driver_cpu": me.ru_utime + me.ru_stime,
                      "workers_cpu": gone.ru_utime + gone.ru_stime}))


def _measure(out: Path, urls: Path, shard_size: int, workers: int) -> dict:
    """Wall and CPU seconds of one build child (``build``) and of each of its steps."""
    cmd = [sys.executable, __file__, "--child", "build", "--out", str(out), "--urls", str(urls),
           "--shard-size", str(shard_size), "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    split = {"driver_cpu": got["driver_cpu"], "workers_cpu": got["workers_cpu"]}
    return {**got["steps"], "build": {"wall": wall, "cpu": cpu, "process_cpu": None, **split}}


def _n_images(out: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
               for p in (out / "images").glob("*.parquet"))


def _table(todo: list[str], workers: list[int], results: dict, n: int) -> list[dict]:
    """Print the medians as a Markdown table; return its rows."""
    def med(what: str, w: int, key: str) -> float:
        vals = [r[what][key] for r in results[w] if r[what].get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    print("| step | workers | images/s | speed-up | CPU s / image (all) | vs first | "
          "CPU s / image (process) | vs first |")
    print("|---|---|---|---|---|---|---|---|")
    rows, base = [], workers[0]
    for what in todo:
        ips0, cpu0, work0 = n / med(what, base, "wall"), med(what, base, "cpu") / n, med(what, base, "process_cpu") / n
        for w in workers:
            ips, cpu, work = n / med(what, w, "wall"), med(what, w, "cpu") / n, med(what, w, "process_cpu") / n
            rows.append({"step": what, "workers": w, "images_per_s": ips, "cpu_s_per_image": cpu,
                         "process_cpu_s_per_image": work})
            proc = f"{work:.3f} | {work / work0 - 1:+.1%}" if work == work else " | "  # NaN: not timed
            print(f"| {what} | {w} | {ips:.2f} | {ips / ips0:.2f}x | {cpu:.3f} | {cpu / cpu0 - 1:+.1%} | {proc} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--shard-size", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (the first is the baseline)")
    ap.add_argument("--stages", default="", help="steps to print (default: every step of the build)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--urls", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.workers = int(args.workers)
        _child(args)
        return 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.engines import _corpus
    from regionset.pipelines.tools.demo.server import LoopbackServer

    workers = [int(w) for w in args.workers.split(",")]
    results: dict[int, list[dict]] = {w: [] for w in workers}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="regionset-cores-") as tmp, LoopbackServer() as server:
        root = Path(tmp)
        corpus = _corpus(args.images)
        urls = [server.add(name, data) for name, data, _ in corpus]
        url_file = root / "urls.parquet"
        pq.write_table(pa.table({"url": urls, "caption": [c for _, _, c in corpus]}), url_file)
        print(f"corpus: {args.images} URLs in shards of {args.shard_size}; workers {workers}; "
              f"{os.cpu_count()} cores", flush=True)
        for r in range(args.runs):
            for w in workers:
                out = root / f"build-{r}-{w}"
                res = _measure(out, url_file, args.shard_size, w)
                results[w].append(res)
                n = _n_images(out)
                loads.append(os.getloadavg()[0])
                steps = ", ".join(f"{k} {v['wall']:.1f}/{v['cpu']:.1f}" for k, v in res.items() if k != "build")
                b = res["build"]
                print(f"  round {r + 1} build, {w} worker(s): {b['wall']:6.1f} s wall, {b['cpu']:6.1f} CPU s "
                      f"(driver {b['driver_cpu']:.1f}, workers {b['workers_cpu']:.1f}; load {loads[-1]:.1f}); "
                      f"per step wall/CPU s: {steps}", flush=True)
    todo = args.stages.split(",") if args.stages else [*results[workers[0]][0]]
    print(f"\nmedian of {args.runs} rounds, {n} images; load average (1 min) seen: "
          f"{min(loads):.1f}-{max(loads):.1f}, median {statistics.median(loads):.1f}")
    rows = _table(todo, workers, results, n)
    print(json.dumps({"images": n, "loads": loads, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
