"""Region-stage throughput: the local executor vs a bare loop calling the same model.

For each of detect, ocr and embed: the stage runs through ``LocalExecutor`` (read shard -> prepare ->
decode -> model -> filters -> validate -> atomic Parquet write -> marker) and, alternately, a bare
loop calls the *same built model object* on the same images, already decoded (and, for embed,
already cropped). Models are built before timing in both. The table shows the median images/s
(crops/s for embed) of each over ``--runs`` runs and the ratio pipeline / bare (goal >= 0.9).

    python bench/stages.py --runs 3                    # CPU: proposer, RapidOCR, tiny open_clip
    python bench/stages.py --runs 3 --clip ViT-B-32 --stages embed
    python bench/stages.py --runs 3 --detect-backend ultralytics --stages detect   # YOLO11n on CPU
    python bench/stages.py --device cuda --runs 3      # GPU: YOLO11n (yolo11n.yaml unless --yolo) and
                                                       #      ViT-B-32 fp16 embeddings, 256 images
    python bench/stages.py --runs 3 --modes batched,fused   # batched OCR, the fused regions step
                                                       # (bench/stage_modes.py; exit 1 if a table differs)
    python bench/stages.py --device cuda --ocr-device cuda --stages ocr   # OCR on onnxruntime-gpu
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
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from regionset import models  # noqa: E402, F401  (offline environment defaults)
from regionset.pipelines.core.shards import STATE_DIR, shard_path, write_table  # noqa: E402
from regionset.pipelines.executors.local import LocalExecutor  # noqa: E402
from regionset.schemas import IMAGES, REGIONS_OBJECT, REGIONS_TEXT, images_schema  # noqa: E402
from regionset.stages.base import Resources  # noqa: E402
from regionset.stages.detect import DetectConfig, DetectStage, UltralyticsConfig  # noqa: E402
from regionset.stages.embed import EmbedConfig, EmbedStage  # noqa: E402
from regionset.stages.ocr import OcrConfig, OcrStage  # noqa: E402
from regionset.stages.region_helpers import decode_pil, decode_rgb  # noqa: E402
from tests.synth import encode, render_text_image, synthetic_scene, text_lines  # noqa: E402


def make_corpus(out: Path, n_images: int, n_shards: int) -> list[int]:
    """Write ``n_images`` (3 scenes : 1 text page) as an ``images`` table in ``n_shards`` shards."""
    rows = []
    for i in range(n_images):
        if i % 4 == 3:
            img = render_text_image(text_lines(6, seed=i), [18, 22, 26, 30, 34, 40], width=720)[0]
        else:
            img = synthetic_scene(i, size=(480, 640), n=5, min_side=90)[0]
        h, w = img.shape[:2]
        rows.append({"key": f"{i:09d}", "url": f"http://bench/{i}.jpg", "caption": None, "status": "success",
                     "error_message": None, "width": w, "height": h, "original_width": w,
                     "original_height": h, "sha256": None, "jpg": encode(img)})
    shards = list(range(n_shards))
    per = -(-n_images // n_shards)
    for s in shards:
        table = pa.Table.from_pylist(rows[s * per:(s + 1) * per], schema=images_schema())
        write_table(table, shard_path(out, IMAGES, s))
    return shards


def run_pipeline(stage, out: Path, shards: list[int]) -> float:
    """Seconds for the local executor to (re)do every shard of ``stage``."""
    shutil.rmtree(out / STATE_DIR / stage.name, ignore_errors=True)
    t = time.perf_counter()
    LocalExecutor(1, show_progress=False).run_stage(stage, out, shards)
    return time.perf_counter() - t


def stored_jpegs(out: Path, shards: list[int]) -> list[bytes]:
    """The stored image bytes of the corpus, in shard order."""
    from regionset.pipelines.core.shards import read_table

    return [b for s in shards for b in read_table(shard_path(out, IMAGES, s)).column("jpg").to_pylist()]


def boxes_by_image(stage: EmbedStage, out: Path, shards: list[int]) -> list[list[tuple[int, int, int, int]]]:
    """Per image of the corpus (in order): the integer boxes the embed stage will crop."""
    from regionset.pipelines.core.shard_run import read_inputs

    boxes = []
    for s in shards:
        for regions in read_inputs(stage, out, s).column("regions").to_pylist():
            boxes.append([(round(r["x0"]), round(r["y0"]), round(r["x1"]), round(r["y1"])) for r in regions])
    return boxes


def bench(name: str, units: str, n: int, pipeline, bare, runs: int) -> dict:
    """Alternate runs of the bare loop (on decoded images, then decoding them itself) and of the
    pipeline; return the median items/s of each and the ratios."""
    p, b, bd = [], [], []
    bare(False), pipeline()  # warm-up: first calls pay one-off costs (allocator, onnx/ultralytics init)
    for _ in range(runs):
        b.append(n / bare(False))
        bd.append(n / bare(True))
        p.append(n / pipeline())
    row = {"stage": name, "units": units, "n": n, "bare": statistics.median(b),
           "bare_decode": statistics.median(bd), "pipeline": statistics.median(p)}
    row["ratio"] = row["pipeline"] / row["bare"]
    row["ratio_decode"] = row["pipeline"] / row["bare_decode"]
    print(f"  {name}: bare {[round(x, 1) for x in b]} bare+decode {[round(x, 1) for x in bd]} "
          f"pipeline {[round(x, 1) for x in p]} {units}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=0, help="corpus size (default: 32 on cpu, 256 on cuda)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="threads per stage, as resources.cpus (0: the whole machine)")
    ap.add_argument("--stages", default="", help="default: detect,ocr,embed on cpu; detect,embed on cuda "
                    "(RapidOCR runs on the CPU in both)")
    ap.add_argument("--detect-backend", default="", help="proposer or ultralytics (default: proposer on "
                    "cpu, ultralytics on cuda)")
    ap.add_argument("--yolo", default="yolo11n.yaml", help="ultralytics model (a .yaml runs random weights)")
    ap.add_argument("--clip", default="", help="open_clip model (default: regionset-tiny-vit on cpu, "
                    "ViT-B-32 on cuda)")
    ap.add_argument("--embed-batch", type=int, default=0)
    ap.add_argument("--modes", default="", help="batched,fused: compare batched OCR / the fused regions step "
                    "with the separate stages instead (bench/stage_modes.py)")
    ap.add_argument("--ocr-batch", type=int, default=8, help="ocr.batch_images of the batched mode")
    ap.add_argument("--ocr-device", default="cpu", help="ocr.device (cuda needs onnxruntime-gpu)")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    todo = (args.stages or ("detect,embed" if cuda else "detect,ocr,embed")).split(",")
    n_images = args.images or (256 if cuda else 32)
    backend = args.detect_backend or ("ultralytics" if cuda else "proposer")
    cpus = Resources(cpus=args.threads)
    detect_cfg = DetectConfig(backend=backend, resources=cpus, ultralytics=UltralyticsConfig(
        model=args.yolo if backend == "ultralytics" else "", device=args.device, batch_size=16 if cuda else 8))
    ocr_cfg = OcrConfig(resources=cpus, device=args.ocr_device)
    embed_cfg = EmbedConfig(model=args.clip or ("ViT-B-32" if cuda else EmbedConfig().model), device=args.device,
                            resources=cpus, batch_size=args.embed_batch or (256 if cuda else 64))
    rows = []
    with tempfile.TemporaryDirectory(prefix="regionset-bench-") as tmp:
        out = Path(tmp)
        shards = make_corpus(out, n_images, args.shards)
        jpgs = stored_jpegs(out, shards)
        images = [decode_rgb(b) for b in jpgs]
        print(f"corpus: {len(images)} images in {len(shards)} shards; device {args.device}", flush=True)
        if args.modes:
            from bench.stage_modes import print_rows, run_modes

            rows = run_modes(args.modes.split(","), out, shards, len(images), args.runs, detect_cfg, ocr_cfg,
                             embed_cfg, args.ocr_batch)
            print_rows(rows, args.runs)
            return 0 if all(r["identical"] for r in rows) else 1
        det, ocr = DetectStage(detect_cfg), OcrStage(ocr_cfg)
        if "detect" in todo or "embed" in todo:
            det.ensure_setup()
        if "ocr" in todo or "embed" in todo:
            ocr.ensure_setup()
        def inputs(decode: bool):
            """The corpus as RGB arrays: the decoded copies, or decoded now (inside the timing)."""
            return (decode_rgb(b) for b in jpgs) if decode else images

        if "detect" in todo:
            model = det._model
            if backend == "proposer":
                def bare_detect(decode: bool):
                    t = time.perf_counter()
                    for im in inputs(decode):
                        model(im)
                    return time.perf_counter() - t
            else:
                def bare_detect(decode: bool):
                    t = time.perf_counter()
                    model(list(inputs(decode)), batch_size=detect_cfg.batch_size)
                    return time.perf_counter() - t
            rows.append(bench(f"detect ({det.model_id.split(' ')[0]})", "images/s", len(images),
                              lambda: run_pipeline(det, out, shards), bare_detect, args.runs))
        if "ocr" in todo:
            engine = ocr._engine

            def bare_ocr(decode: bool):
                t = time.perf_counter()
                for im in inputs(decode):
                    engine(im)
                return time.perf_counter() - t
            rows.append(bench("ocr (rapidocr PP-OCRv4)", "images/s", len(images),
                              lambda: run_pipeline(ocr, out, shards), bare_ocr, args.runs))
        if "embed" in todo:
            for stage, folder in ((det, REGIONS_OBJECT), (ocr, REGIONS_TEXT)):
                if not shard_path(out, folder, shards[-1]).exists():
                    run_pipeline(stage, out, shards)
            emb = EmbedStage(embed_cfg)
            emb.ensure_setup()
            boxes = boxes_by_image(emb, out, shards)
            n_crops = sum(map(len, boxes))
            embedder = emb.embedder
            embedder.encode([Image.fromarray(images[0])] * 8, batch_size=8)  # warm-up
            pils = [Image.fromarray(im) for im in images]

            def bare_embed(decode: bool):
                t = time.perf_counter()
                crops = []
                for i, bs in enumerate(boxes):
                    pil = decode_pil(jpgs[i]) if decode else pils[i]
                    crops.extend(pil.crop(b) for b in bs)
                embedder.encode(crops, batch_size=embed_cfg.batch_size)
                return time.perf_counter() - t
            rows.append(bench(f"embed ({embed_cfg.model}, {embedder.precision})", "crops/s", n_crops,
                              lambda: run_pipeline(emb, out, shards), bare_embed, args.runs))
    print()
    print(f"median of {args.runs} runs, device {args.device}; ratio = pipeline / bare loop on decoded images "
          "(decode = pipeline / bare loop that also decodes the JPEGs)")
    print("| stage | n | bare | bare + decode | pipeline | ratio | ratio vs bare + decode |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['n']} | {r['bare']:.1f} | {r['bare_decode']:.1f} | {r['pipeline']:.1f} {r['units']} "
              f"| {r['ratio']:.2f} | {r['ratio_decode']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
