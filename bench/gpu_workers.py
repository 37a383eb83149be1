"""Workers per GPU: one model stage through the local executor with ``resources.gpus`` = 1/N, for
each N of ``--workers`` (default 1,2,4), on every visible GPU (docs/cluster.md "Several workers per GPU").

For each N a fresh executor runs the stage once (workers start, models load: reported as "start"),
then ``--runs`` timed reruns of every shard (markers removed first, models kept loaded); the table
shows the median images/s and crops/s, the workers and GPUs, and whether the output tables equal
N = 1's (content hashes). ``--stage embed`` (default) times the embedder alone, its detect and ocr
inputs made once beforehand on the CPU; ``--stage regions`` times the fused step (detect and OCR on
the worker's CPU share, OCR on CUDA with ``--ocr-device cuda``, embed on the GPU).

    python bench/gpu_workers.py --device cuda --clip ViT-B-16          # 1, 2, 4 embed workers per GPU
    python bench/gpu_workers.py --device cuda --stage regions --workers 1,2
    python bench/gpu_workers.py --device cpu --images 8 --shards 2 --runs 1   # smoke run: N CPU workers

On the CPU there is no GPU to share: N is then ``executor.processes`` (the same sweep, no pinning).
The last line is one summary line (``bench/gpu/run.sh`` collects it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.stages import make_corpus  # noqa: E402
from regionset.pipelines.core.shards import STATE_DIR, read_table, shard_path  # noqa: E402
from regionset.pipelines.executors.gpus import visible_gpus  # noqa: E402
from regionset.pipelines.executors.local import LocalExecutor  # noqa: E402
from regionset.schemas import EMBEDDINGS, REGIONS_OBJECT, REGIONS_TEXT  # noqa: E402
from regionset.stages.base import Resources  # noqa: E402
from regionset.stages.detect import DetectConfig, DetectStage  # noqa: E402
from regionset.stages.embed import EmbedConfig, EmbedStage  # noqa: E402
from regionset.stages.ocr import OcrConfig, OcrStage  # noqa: E402
from regionset.stages.regions import RegionsConfig, RegionsStage  # noqa: E402
from tests.helpers import table_hash  # noqa: E402


def make_stage(kind: str, n: int, args: argparse.Namespace, gpu: bool):
    """The stage to time, its GPU parts given ``1/n`` of a GPU per worker (nothing on the CPU)."""
    share = Resources(gpus=1 / n) if gpu else Resources()
    embed = EmbedConfig(model=args.clip, device=args.device, batch_size=args.embed_batch, resources=share)
    if kind == "embed":
        return EmbedStage(embed)
    ocr = OcrConfig(device=args.ocr_device, resources=share if args.ocr_device != "cpu" else Resources())
    return RegionsStage(RegionsConfig(detect=DetectConfig(), ocr=ocr, embed=embed))


def rerun(ex: LocalExecutor, stage, out: Path, shards: list[int]) -> float:
    """Seconds to redo every shard of ``stage`` on ``ex`` (its markers removed first)."""
    for name in [p.name for p in getattr(stage, "parts", ())] or [stage.name]:
        shutil.rmtree(out / STATE_DIR / name, ignore_errors=True)
    t = time.perf_counter()
    report = ex.run_stage(stage, out, shards)
    assert report.done == len(shards), report
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (the sweep) or cpu (a smoke run: N CPU workers)")
    ap.add_argument("--stage", default="embed", choices=("embed", "regions"))
    ap.add_argument("--workers", default="1,2,4", help="workers per GPU to sweep")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--shards", type=int, default=16, help="at least GPUs x the largest N, so every worker has work")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--clip", default="", help="open_clip model (default ViT-B-16 on cuda, the tiny test model on "
                    "cpu; random weights unless a local checkpoint)")
    ap.add_argument("--embed-batch", type=int, default=256)
    ap.add_argument("--ocr-device", default="cpu", help="ocr.device of --stage regions (cuda needs onnxruntime-gpu)")
    args = ap.parse_args(argv)
    sweep = [int(x) for x in args.workers.split(",") if x]
    args.clip = args.clip or ("ViT-B-16" if args.device.startswith("cuda") else EmbedConfig().model)
    gpus = visible_gpus() if args.device.startswith("cuda") else []
    if args.device.startswith("cuda") and not gpus:
        print("gpu_workers: --device cuda but no GPU is visible (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="regionset-gpu-workers-") as tmp:
        out = Path(tmp)
        shards = make_corpus(out, args.images, args.shards)
        if args.stage == "embed":  # its inputs, once, on the CPU (not timed)
            with LocalExecutor("auto", show_progress=False) as ex:
                for s in (DetectStage(DetectConfig()), OcrStage(OcrConfig(device="cpu"))):
                    ex.run_stage(s, out, shards)
        crops = sum(read_table(shard_path(out, f, s)).num_rows for f in (REGIONS_OBJECT, REGIONS_TEXT) for s in shards
                    if shard_path(out, f, s).exists())
        print(f"corpus: {args.images} images in {len(shards)} shards; {crops} crops before the run; "
              f"GPUs: {gpus or 'none (CPU smoke run)'}; stage {args.stage}, {args.clip}", flush=True)
        reference = None
        for n in sweep:
            stage = make_stage(args.stage, n, args, bool(gpus))
            with LocalExecutor(1 if gpus else n, show_progress=False, gpus=gpus or None) as ex:
                slots = ex.gpu_slots(stage)
                start = rerun(ex, stage, out, shards)  # workers start and load their models
                times = [rerun(ex, stage, out, shards) for _ in range(args.runs)]
                workers = min(len(slots), len(shards)) if slots else min(n, len(shards))
            n_crops = sum(read_table(shard_path(out, EMBEDDINGS, s)).num_rows for s in shards)
            hashes = {f: table_hash(out, f) for f in (REGIONS_OBJECT, REGIONS_TEXT, EMBEDDINGS)}
            reference = reference or hashes
            wall = statistics.median(times)
            rows.append({"n": n, "workers": workers, "gpus": len(gpus), "start": start, "wall": wall,
                         "images_s": args.images / wall, "crops_s": n_crops / wall, "identical": hashes == reference})
            print(f"  N={n}: {workers} worker(s), start {start:.1f} s, runs {[round(t, 2) for t in times]} s", flush=True)
    print()
    print(f"median of {args.runs} runs after a start-up run; device {args.device}; stage {args.stage}, {args.clip}")
    print("| workers per GPU | GPUs | workers | start s | images/s | crops/s | same tables as N=1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['gpus']} | {r['workers']} | {r['start']:.1f} | {r['images_s']:.1f} | "
              f"{r['crops_s']:.1f} | {'yes' if r['identical'] else 'NO'} |")
    best = max(rows, key=lambda r: r["images_s"])
    print("summary: gpu_workers " + " ".join(f"N={r['n']}:{r['images_s']:.1f}img/s,{r['crops_s']:.0f}crops/s"
                                            for r in rows) + f" best N={best['n']} ({args.stage}, {args.device})")
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
