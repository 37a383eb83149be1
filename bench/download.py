"""Download throughput: bare ``img2dataset.download`` vs regionset's download stage, same corpus.

Both fetch the same loopback corpus (mixed sizes, a few bad URLs) with the same threads and one
process, resize to 512 (keep_ratio) and write Parquet. Runs alternate; the table shows the median
images/s of each and the ratio regionset / img2dataset.

    python bench/download.py --images 2000 --runs 3
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from regionset.pipelines.tools.demo.server import LoopbackServer  # noqa: E402


def corpus(server: LoopbackServer, n: int) -> list[str]:
    """``n`` URLs over 40 distinct JPEGs of 200-1400 px, 1 % of them 404s."""
    blobs = []
    for i in range(40):
        w, h = 200 + (i * 97) % 1200, 200 + (i * 61) % 900
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (i * 6 % 255, 90, 200 - i * 4)).save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    urls = []
    for i in range(n):
        urls.append(server.url("status/404") if i % 100 == 99 else server.add(f"img{i}.jpg", blobs[i % 40]))
    return urls


def run_img2dataset(url_file: Path, out: Path, threads: int, shard: int) -> float:
    from img2dataset import download

    t = time.perf_counter()
    download(url_list=str(url_file), input_format="parquet", url_col="url", caption_col="caption",
             output_format="parquet", output_folder=str(out), processes_count=1, thread_count=threads,
             image_size=512, resize_mode="keep_ratio", resize_only_if_bigger=True, number_sample_per_shard=shard,
             timeout=5, retries=0, compute_hash="sha256", enable_wandb=False, distributor="multiprocessing")
    return time.perf_counter() - t


def run_regionset(url_file: Path, out: Path, threads: int, shard: int) -> float:
    from regionset.pipelines.build import build
    from regionset.pipelines.config import load_config

    cfg = load_config(None, [f"output={out}", f"input.path={url_file}", f"input.shard_size={shard}",
                             "steps=[download]", "download.allow_loopback=true", "download.timeout=5",
                             f"download.thread_count={threads}", "progress=false"])
    t = time.perf_counter()
    build(cfg)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--shard-size", type=int, default=1000)
    a = ap.parse_args()
    with LoopbackServer() as server, tempfile.TemporaryDirectory() as tmp:
        urls = corpus(server, a.images)
        url_file = Path(tmp) / "urls.parquet"
        pq.write_table(pa.table({"url": urls, "caption": [f"c{i}" for i in range(len(urls))]}), url_file)
        times: dict[str, list[float]] = {"img2dataset": [], "regionset": []}
        for r in range(a.runs):
            for name, fn in (("img2dataset", run_img2dataset), ("regionset", run_regionset)):
                times[name].append(fn(url_file, Path(tmp) / f"{name}-{r}", a.threads, a.shard_size))
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: a.images / v for k, v in med.items()}
    print(f"\n{a.images} URLs, {a.threads} threads, 1 process, {a.runs} runs (median)")
    print(f"{'engine':<12} {'seconds':>8} {'images/s':>9}")
    for k in times:
        print(f"{k:<12} {med[k]:>8.2f} {rate[k]:>9.1f}")
    print(f"ratio regionset/img2dataset (images/s): {rate['regionset'] / rate['img2dataset']:.3f}")


if __name__ == "__main__":
    main()
