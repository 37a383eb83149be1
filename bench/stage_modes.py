"""bench/stages.py ``--modes batched,fused``: batched OCR and the fused ``regions`` step against the
separate, one-image-at-a-time stages, through the local executor, output checked identical.

- ``batched``: the ocr stage with ``ocr.batch_images`` 1 and N; images/s (wall) and images per CPU
  second (process CPU time, all threads: a per-core rate that a busy machine does not distort).
- ``fused``: detect, ocr and embed run one after the other vs the fused ``regions`` step; images/s,
  images per CPU second, and the CPU seconds of the decodes the fused step does not do (measured
  decode CPU time per image x the decodes saved: ocr's, and embed's for images with regions).

Every mode's tables are compared by content hash with the reference mode's ("identical"). The
modes of a comparison alternate run by run, so the drift of a busy machine hits both alike.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from pathlib import Path

from regionset.pipelines.core.shards import STATE_DIR, read_table, shard_path
from regionset.pipelines.executors.local import LocalExecutor
from regionset.schemas import EMBEDDINGS, IMAGES, REGIONS_OBJECT, REGIONS_TEXT
from regionset.stages.detect import DetectConfig, DetectStage
from regionset.stages.embed import EmbedConfig, EmbedStage
from regionset.stages.ocr import OcrConfig, OcrStage
from regionset.stages.region_helpers import decode_pil
from regionset.stages.regions import RegionsConfig, RegionsStage
from tests.helpers import table_hash


def _run(stages: list, out: Path, shards: list[int]) -> tuple[float, float, dict[str, float]]:
    """(wall, CPU, CPU by stage) seconds to redo every shard of each stage in turn (markers removed first)."""
    for s in stages:
        for name in [p.name for p in getattr(s, "parts", ())] or [s.name]:
            shutil.rmtree(out / STATE_DIR / name, ignore_errors=True)
    wall, cpu, by_stage = time.perf_counter(), time.process_time(), {}
    for s in stages:
        c = time.process_time()
        LocalExecutor(1, show_progress=False).run_stage(s, out, shards)
        by_stage[s.name] = time.process_time() - c
    return time.perf_counter() - wall, time.process_time() - cpu, by_stage


def _measure(modes: list[tuple[str, list]], out: Path, shards: list[int], n: int, runs: int,
             folders: list[str]) -> list[dict]:
    """Median images/s and images per CPU second of each ``(name, stages)`` over ``runs`` runs, after
    a warm-up; the modes alternate run by run (so a busy machine's drift hits them alike)."""
    got: dict[str, list] = {name: [] for name, _ in modes}
    hashes = {}
    for name, stages in modes:
        for s in stages:
            s.ensure_setup()
        _run(stages, out, shards)
        hashes[name] = {f: table_hash(out, f) for f in folders}
    for r in range(runs):
        for name, stages in (modes if r % 2 == 0 else modes[::-1]):
            got[name].append(_run(stages, out, shards))
    rows = []
    for name, stages in modes:
        g = got[name]
        wall, cpu = statistics.median(x[0] for x in g), statistics.median(x[1] for x in g)
        print(f"  {name}: wall {[round(x[0], 2) for x in g]} s, cpu {[round(x[1], 2) for x in g]} s", flush=True)
        if len(stages) > 1:
            for s in stages:
                c = statistics.median(x[2][s.name] for x in g)
                print(f"    {s.name}: {n / c:.2f} images per CPU s ({c:.2f} CPU s)", flush=True)
        rows.append({"mode": name, "n": n, "per_s": n / wall, "per_cpu_s": n / cpu, "cpu_s": cpu,
                     "hashes": hashes[name], "identical": hashes[name] == hashes[modes[0][0]]})
    return rows


def _decode_cpu_per_image(out: Path, shards: list[int]) -> float:
    """CPU seconds to decode one stored image (median of the corpus, decoded once each)."""
    times = []
    for s in shards:
        for data in read_table(shard_path(out, IMAGES, s)).column("jpg").to_pylist():
            c = time.process_time()
            decode_pil(data)
            times.append(time.process_time() - c)
    return statistics.median(times)


def run_modes(modes: list[str], out: Path, shards: list[int], n: int, runs: int, detect: DetectConfig,
              ocr: OcrConfig, embed: EmbedConfig, batch: int) -> list[dict]:
    """The rows of the modes asked for (each with ``identical``: its tables equal its reference's)."""
    rows = []
    if "batched" in modes:
        rows += _measure([(f"ocr, batch_images={k}", [OcrStage(dataclasses.replace(ocr, batch_images=k))])
                          for k in (1, batch)], out, shards, n, runs, [REGIONS_TEXT])
    if "fused" in modes:
        folders = [REGIONS_OBJECT, REGIONS_TEXT, EMBEDDINGS]
        sep, fused = _measure([("detect + ocr + embed", [DetectStage(detect), OcrStage(ocr), EmbedStage(embed)]),
                               ("regions (fused)", [RegionsStage(RegionsConfig(detect, ocr, embed))])],
                              out, shards, n, runs, folders)
        with_regions = len({k for f in (REGIONS_OBJECT, REGIONS_TEXT) for s in shards
                            for k in read_table(shard_path(out, f, s)).column("key").to_pylist()})
        fused["decode_cpu_saved"] = (n + with_regions) * _decode_cpu_per_image(out, shards)
        rows += [sep, fused]
    return rows


def print_rows(rows: list[dict], runs: int) -> None:
    """The markdown table of ``run_modes``' rows."""
    print(f"\nmedian of {runs} runs through the local executor; per CPU s = images per process CPU second")
    print("| mode | images | images/s | images per CPU s | CPU s | identical tables | decode CPU s saved |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        saved = f"{r['decode_cpu_saved']:.2f}" if "decode_cpu_saved" in r else "-"
        print(f"| {r['mode']} | {r['n']} | {r['per_s']:.2f} | {r['per_cpu_s']:.2f} | {r['cpu_s']:.1f} "
              f"| {'yes' if r['identical'] else 'NO'} | {saved} |")
