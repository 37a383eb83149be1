"""k-means at scale: synthetic clustered embeddings through the real fit_kmeans → assign → pack.

Writes ``--regions`` synthetic clustered embeddings as real ``embeddings`` shards (pipeline schema,
fp16) with matching ``regions/object`` and ``images`` rows (4 regions per image), then runs
``regionset build`` with ``steps=[fit_kmeans,assign,pack]`` on the local executor in a child
process, polling the driver's and its worker processes' RSS every 0.2 s (``--rss-log``: the trace).
Assign throughput is printed per wall second (the markers' seconds) and per CPU-second (the stage's
``cpu_ms:*`` timings in its markers), which a machine shared with other jobs does not skew. Afterwards it compares
the beam search with the exact one on ``--check`` sample rows for each ``--beams`` width, on one
thread, by CPU time. ``--kmeans-dir`` labels with an already fitted tree (steps ``assign``), to see
assign vs N with one tree; ``--keep`` keeps (and reuses) the data. Prints one JSON line last.

    python bench/scale.py --regions 1000000 --dim 64 --leaves 4096 --sample 262144
    python bench/scale.py --regions 1000000 --dim 64 --leaves 65536 --sample 262144 --fit per_parent --processes 2
    python bench/scale.py --regions 4000000 --leaves 65536 --processes 2 --kmeans-dir OUT/kmeans --keep DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_shards(out: Path, urls: Path, regions: int, dim: int, per_shard: int, seed: int = 0,
                 blobs: int = 0) -> int:
    """Clustered fp16 embeddings (``blobs`` Zipf-sized Gaussian blobs, default 4·√regions) as shards;
    returns the shard count."""
    from tests.helpers import write_urls
    from tests.label_data import key_of, write_image_shard, write_region_shard

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((blobs or 4 * int(math.sqrt(regions)), dim)).astype(np.float32)
    w = 1.0 / np.arange(1, len(centres) + 1) ** 0.8
    shards = math.ceil(regions / per_shard)
    for s in range(shards):
        idx = np.arange(s * per_shard, min(regions, (s + 1) * per_shard))
        lab = rng.choice(len(centres), len(idx), p=w / w.sum())
        x = centres[lab] + 0.5 * rng.standard_normal((len(idx), dim), dtype=np.float32)
        write_region_shard(out, s, idx, x)
        write_image_shard(out, s, sorted({key_of(int(i)) for i in idx}))
    write_urls(urls, [f"http://127.0.0.1:9/{i}.jpg" for i in range(math.ceil(regions / 4))])
    return shards


def _tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid``, largest RSS among its descendants) in bytes, from /proc."""
    def rss(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def kids(p: int) -> list[int]:
        try:
            out = []
            for t in Path(f"/proc/{p}/task").iterdir():
                out += [int(c) for c in (t / "children").read_text().split()]
            return out
        except OSError:
            return []

    todo, desc = kids(pid), []
    while todo:
        c = todo.pop()
        desc.append(c)
        todo += kids(c)
    return rss(pid), max([rss(c) for c in desc] or [0])


def run_build(out: Path, urls: Path, per_shard: int, args: argparse.Namespace) -> dict:
    levels = [2 ** round(math.log2(math.sqrt(args.leaves)))]
    levels.append(args.leaves // levels[0])
    cmd = [sys.executable, "-m", "regionset.pipelines.cli", "build", f"output={out}", f"input.path={urls}",
           f"input.shard_size={per_shard // 4}", "progress=false", f"steps=[{args.steps}]",
           f"kmeans.levels=[{levels[0]},{levels[1]}]", f"kmeans.sample_size={args.sample}",
           f"kmeans.niter={args.niter}", f"kmeans.fit={args.fit}", f"executor.processes={args.processes}",
           f"assign.search={args.search}", f"assign.beam={args.beam}",
           *([f"assign.kmeans_dir={args.kmeans_dir}"] if args.kmeans_dir else []),
           "download.image_size=16"]  # images exist already: only keeps preflight's disk estimate small
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = worker = 0
    trace = open(args.rss_log, "w") if args.rss_log else None  # noqa: SIM115 - closed below
    while proc.poll() is None:
        d, w = _tree_rss(proc.pid)
        driver, worker = max(driver, d), max(worker, w)
        if trace:
            trace.write(f"{time.perf_counter() - t0:.1f} {d >> 20} {w >> 20}\n")
        time.sleep(0.2)
    if trace:
        trace.close()
    log = proc.stdout.read() if proc.stdout else ""
    if args.rss_log:
        Path(args.rss_log).with_suffix(".build.log").write_text(log)
    if proc.returncode:
        raise SystemExit(f"build failed ({proc.returncode}):\n{log[-3000:]}")
    return {"wall_s": time.perf_counter() - t0, "driver": driver, "worker": worker, "levels": levels}


def beam_tradeoff(out: Path, kmeans_dir: Path, beams: list[int], rows: int, runs: int = 3) -> dict[int, tuple[float, float, float]]:
    """Per beam width: (% same leaf as exact, inertia ratio, speed-up over exact) on ``rows`` rows.

    Exact and each beam are timed alternately ``runs`` times on one thread (BLAS and the beam's
    block threads), by CPU time of this process: on a machine shared with other jobs wall time
    mostly measures their load. The speed-up is the ratio of the median CPU times."""
    import statistics

    from threadpoolctl import threadpool_limits

    from regionset.models.kmeans_beam import beam_search
    from regionset.models.kmeans_index import ClusterTree, l2_normalize, nearest_centroids
    from regionset.pipelines.kmeans.sample import uniform_sample

    tree = ClusterTree.load(kmeans_dir)
    shards = sorted(int(p.stem.split("-")[1]) for p in (out / "embeddings").glob("part-*.parquet"))
    x = uniform_sample(out, shards, ("object",), rows, seed=99).x
    x = l2_normalize(x) if tree.spherical else x
    times: dict[int, list[float]] = {b: [] for b in [0, *beams]}
    found = {}
    with threadpool_limits(1):
        for _ in range(runs):
            for b in times:
                t = time.process_time()
                if b:
                    found[b] = beam_search(x, tree.centroids, tree.parents, b, threads=1)
                else:
                    found[b] = nearest_centroids(x, tree.centroids[-1], "numpy")
                times[b].append(time.process_time() - t)
    (exact, edist), te = found[0], statistics.median(times[0])
    return {b: (100.0 * float((found[b][0] == exact).mean()),
                float(found[b][1].mean() / edist.mean()), te / statistics.median(times[b])) for b in beams}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regions", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--leaves", type=int, default=65_536)
    ap.add_argument("--sample", type=int, default=1_000_000, help="kmeans.sample_size")
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--per-shard", type=int, default=100_000, help="regions per shard")
    ap.add_argument("--blobs", type=int, default=0, help="Gaussian blobs of the synthetic data (default "
                    "4·√regions; fix it to compare N on equally hard data)")
    ap.add_argument("--fit", default="local", choices=["local", "per_parent"])
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--search", default="beam", choices=["auto", "exact", "beam"])
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--beams", default="4,8,16,64")
    ap.add_argument("--check", type=int, default=20_000, help="rows of the beam/exact comparison")
    ap.add_argument("--steps", default="", help="the build's steps (default fit_kmeans,assign,pack)")
    ap.add_argument("--rss-log", default="", help="file for a 't driver_MiB worker_MiB' line every 0.2 s")
    ap.add_argument("--keep", default="", help="folder to keep the input and output in (default: a temp "
                    "folder); shards already written there by an earlier run of the same --regions are reused")
    ap.add_argument("--kmeans-dir", default="", help="label with this fitted tree (assign.kmeans_dir) instead of "
                    "fitting one: assign throughput vs N with one tree; default steps become assign")
    args = ap.parse_args()
    args.steps = args.steps or ("assign" if args.kmeans_dir else "fit_kmeans,assign,pack")
    from regionset.pipelines.tools.status import collect_status

    load0 = os.getloadavg()[0]  # the machine may be shared: printed with the numbers
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        out = base / "out"
        t = time.perf_counter()
        shards = math.ceil(args.regions / args.per_shard)
        if len(list((out / "embeddings").glob("part-*.parquet"))) != shards or not (base / "in" / "urls.parquet").exists():
            shards = write_shards(out, base / "in", args.regions, args.dim, args.per_shard, blobs=args.blobs)
        write_s = time.perf_counter() - t
        run = run_build(out, base / "in" / "urls.parquet", args.per_shard, args)
        kmeans_dir = Path(args.kmeans_dir) if args.kmeans_dir else out / "kmeans"
        meta = json.loads((kmeans_dir / "kmeans.json").read_text())
        st = collect_status(out)["stages"]
        assign = st["assign"]
        cpu = assign["timings"]
        searched = sum(v for k, v in assign["counters"].items() if k.startswith("search:"))
        beams = [int(b) for b in args.beams.split(",") if b]
        trade = beam_tradeoff(out, kmeans_dir, sorted(set(beams + [args.beam])), args.check)
    print(f"exact vs beam timed alternately on 1 thread (CPU time), {args.check} rows, median of 3")
    for b, (agree, ratio, speed) in sorted(trade.items()):
        print(f"beam {b}: {agree:.2f} % same leaf, inertia ratio {ratio:.4f}, speed-up {speed:.2f}x")
    print(f"assign: {assign['rows_in']} rows, {assign['seconds']:.1f} s summed over shards, cpu {cpu}")
    print(json.dumps({
        "regions": args.regions, "blobs": args.blobs or 4 * int(math.sqrt(args.regions)), "dim": args.dim, "leaves": meta["sizes"][-1], "levels": run["levels"],
        "shards": shards, "sample": meta["sample_rows"], "fit": f"none (tree {args.kmeans_dir})" if args.kmeans_dir else args.fit, "processes": args.processes,
        "write_s": round(write_s, 1), "build_s": round(run["wall_s"], 1), "fit_s": None if args.kmeans_dir else meta.get("wall_seconds"), "steps": args.steps,
        "sample_inertia": round(meta["sample_inertia"], 5),
        "assign_rows_per_s": round(assign["rows_in"] / max(assign["seconds"], 1e-9)),
        "assign_search_rows_per_cpu_s": round(searched / max(cpu.get("cpu_ms:search", 0) / 1000, 1e-9)),
        "assign_rows_per_cpu_s": round(assign["rows_in"] / max(cpu.get("cpu_ms:stage", 0) / 1000, 1e-9)),
        "assign_check_cpu_share": round(cpu.get("cpu_ms:check", 0) / max(cpu.get("cpu_ms:stage", 0), 1), 3),
        "assign_search": [k for k in assign["counters"] if k.startswith("search:")],
        "load_avg": [round(v, 1) for v in (load0, os.getloadavg()[0])],
        "driver_peak_rss_mib": round(run["driver"] / 2**20), "worker_peak_rss_mib": round(run["worker"] / 2**20),
        "beam": args.beam, "beam_agreement": round(trade[args.beam][0], 2),
        "beam_inertia_ratio": round(trade[args.beam][1], 5), "beam_speedup": round(trade[args.beam][2], 2),
        "beam_check_in_build": st["assign"].get("beam_check"),
        "beams": {b: {"same_leaf_pct": round(a, 2), "inertia_ratio": round(r, 4), "speedup": round(v, 2)}
                  for b, (a, r, v) in sorted(trade.items())},
    }))


if __name__ == "__main__":
    main()
