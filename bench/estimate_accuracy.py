"""How close is ``regionset estimate``? Predict a demo-like loopback build from a sample, then run it.

Serves ``--urls`` distinct demo-like images on loopback (3 synthetic scenes : 1 rendered text page,
as bench/stages.py), runs ``measure_sample`` on the first ``--sample`` URLs and projects the whole
list (``project``, this machine's cores), then runs the real build of every URL with the same config
in a fresh process (as a user would: no model or import already warm) and prints predicted vs actual
wall per step and in total, bytes per table, and what the build's ETA models of the global steps
(``GlobalStep.cost``: the progress line and ``status --watch``) predicted for the real build's images
and regions against the seconds those steps took.

    python bench/estimate_accuracy.py --urls 1000 --sample 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from regionset.pipelines.build import build  # noqa: E402
from regionset.pipelines.config import load_config  # noqa: E402
from regionset.pipelines.core.eta import BuildWork  # noqa: E402
from regionset.pipelines.core.progress import print_table  # noqa: E402
from regionset.pipelines.definition import GlobalStep, build_steps  # noqa: E402
from regionset.pipelines.executors.local import LocalExecutor  # noqa: E402
from regionset.pipelines.tools.demo.run import demo_overrides  # noqa: E402
from regionset.pipelines.tools.demo.server import LoopbackServer  # noqa: E402
from regionset.pipelines.tools.estimate.measure import MeteredExecutor, folder_bytes, measure_sample  # noqa: E402
from regionset.pipelines.tools.estimate.projection import project  # noqa: E402
from tests.helpers import write_urls  # noqa: E402
from tests.synth import encode, render_text_image, synthetic_scene, text_lines  # noqa: E402


def serve_corpus(server: LoopbackServer, n: int) -> list[str]:
    """``n`` distinct images on ``server``; their URLs."""
    urls = []
    for i in range(n):
        if i % 4 == 3:
            img, fmt = render_text_image(text_lines(5, seed=i), [20, 24, 28, 32, 40], width=640)[0], "PNG"
        else:
            img, fmt = synthetic_scene(i, size=(384, 512), n=5, min_side=80)[0], "JPEG"
        urls.append(server.add(f"{i}.{fmt.lower()}", encode(img, fmt)))
    return urls


def child_build(urls: str, out: str, shard_size: int, report: str) -> None:
    """The real build, in its own process: per-step wall seconds and the total into ``report`` (JSON)."""
    cfg = load_config(None, [*demo_overrides(Path(out), Path(urls), shard_size), "progress=false"])
    metered = MeteredExecutor(LocalExecutor(1, show_progress=False))
    t = time.perf_counter()
    with metered:
        result = build(cfg, executor=metered)
    steps = {s["stage"]: s["wall_s"] for s in metered.spans}
    steps.update({k: float(v.get("seconds", 0.0)) for k, v in result.globals.items()})
    reports = {r.stage: r for r in result.reports}
    work = BuildWork(float(reports["download"].rows_in), float(reports["embed"].rows_out), os.cpu_count() or 1)
    models = {s.name: s.cost(work) for s in build_steps(cfg) if isinstance(s, GlobalStep) and s.cost is not None}
    Path(report).write_text(json.dumps({"steps": steps, "build_s": time.perf_counter() - t, "models": models,
                                        "work": [work.images, work.regions, work.cores]}))


def pct(pred: float, actual: float) -> str:
    return f"{100.0 * (pred - actual) / actual:+.1f} %" if actual else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--shard-size", type=int, default=25)
    ap.add_argument("--child", nargs=3, metavar=("URLS", "OUT", "REPORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_build(args.child[0], args.child[1], args.shard_size, args.child[2])
        return
    tmp = Path(tempfile.mkdtemp(prefix="regionset-estimate-bench-"))
    try:
        with LoopbackServer() as server:
            urls = write_urls(tmp, serve_corpus(server, args.urls))
            cfg = load_config(None, [*demo_overrides(tmp / "out", urls, args.shard_size), "progress=false"])
            t = time.perf_counter()
            costs = measure_sample(cfg, args.sample)
            sample_s = time.perf_counter() - t
            proj = project(costs, args.urls)
            report = tmp / "actual.json"
            subprocess.run([sys.executable, __file__, "--shard-size", str(args.shard_size), "--child", str(urls),
                            str(tmp / "out"), str(report)], check=True, timeout=6 * 3600)
            got_all = json.loads(report.read_text())
        actual, build_s = got_all["steps"], got_all["build_s"]
        rows = [[name, f"{s['wall_s']:.1f}", f"{actual.get(name, 0.0):.1f}", pct(s["wall_s"], actual.get(name, 0.0)),
                 "⚠" if s["extrapolated"] else ""] for name, s in proj["stages"].items()]
        steps_actual = sum(actual.values())
        rows.append(["all steps", f"{proj['wall_s']:.1f}", f"{steps_actual:.1f}", pct(proj["wall_s"], steps_actual), ""])
        rows.append(["whole build (+ sharding, catalog)", f"{proj['wall_s']:.1f}", f"{build_s:.1f}",
                     pct(proj["wall_s"], build_s), ""])
        print_table(f"wall seconds: estimate from {costs['sample_images']} URLs ({sample_s:.0f} s) vs the "
                    f"build of {args.urls} URLs, {os.cpu_count()} cores, shard_size {args.shard_size}",
                    ["step", "predicted", "actual", "error", ""], rows)
        out = tmp / "out"
        brows, pred_total, act_total = [], 0.0, 0
        for table, pred in proj["bytes"].items():
            got = folder_bytes(out / table)[0] if costs["tables"][table].get("per_shard", True) else \
                sum(p.stat().st_size for p in (out / table).rglob("*") if p.is_file())
            pred_total, act_total = pred_total + pred, act_total + got
            brows.append([table, f"{pred:,.0f}", f"{got:,}", pct(pred, got)])
        brows.append(["all tables", f"{pred_total:,.0f}", f"{act_total:,}", pct(pred_total, act_total)])
        print_table("bytes per table: predicted vs actual", ["table", "predicted", "actual", "error"], brows)
        images, regions, cores = got_all["work"]
        mrows = [[name, f"{m[0]:.2f}", f"{actual.get(name, 0.0):.2f}", pct(m[0], actual.get(name, 0.0)), m[1]]
                 for name, m in got_all["models"].items() if m is not None]
        print_table(f"ETA models of the global steps ({images:.0f} images, {regions:.0f} regions, {cores} cores) vs "
                    "the seconds they took", ["step", "model s", "actual s", "error", "from"], mrows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
