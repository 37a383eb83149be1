"""Benchmark: builds writing to local disk vs a loopback S3 server (moto), and planning requests.

1. Throughput: the same loopback build (``--steps``, default ``download,detect,embed``: download ->
   embed with the weight-free proposer and the tiny CLIP, ``embed.sources=[object]``) of ``--images``
   images served on loopback (the demo photos under distinct URLs) into a local folder and into
   ``s3://bench/run-N``, alternated ``--repeats`` times; images/s of each, the ratio S3/local of each
   pair and their median.
2. Planning: a ``--shards``-shard table as a build left it in ``s3://bench/plan`` (``images`` objects,
   their ``download`` markers, ``detect`` markers that match: a resume where nothing is to do); the
   build's start (``clean_temp_files`` + ``load_committed``) and ``plan_stage`` of ``detect`` in a
   fresh process state, once without the marker indexes (``cold``: the first build after an upgrade,
   or after a run killed before it saved them) and once with them (``warm``: every later build); the
   server's requests by kind (LIST pages, HEAD, GET, PUT), counted from its request log.

Usage: ``python bench/storage.py --images 200 --repeats 3 --shards 10000``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from moto.server import ThreadedMotoServer  # noqa: E402

BUCKET = "bench"


class _Requests(logging.Handler):
    """Counts the server's requests by kind from werkzeug's access log."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        for method in ("GET", "HEAD", "PUT", "DELETE", "POST"):
            if f'"{method} ' in msg:
                self.counts["LIST" if method == "GET" and "list-type=" in msg else method] += 1


def _start() -> tuple[ThreadedMotoServer, _Requests]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    counter = _Requests()
    log = logging.getLogger("werkzeug")
    log.setLevel(logging.INFO)
    log.addHandler(counter)
    log.propagate = False
    return server, counter


def _build_overrides(out: str, urls: Path, steps: str) -> list[str]:
    return [f"output={out}", f"input.path={urls}", "input.shard_size=50", f"steps=[{steps}]",
            "download.allow_loopback=true", "progress=false", "embed.sources=[object]", "embed.device=cpu"]


def _throughput(images: int, repeats: int, steps: str, tmp: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from regionset.pipelines.build import build
    from regionset.pipelines.config import load_config
    from regionset.pipelines.tools.demo.corpus import demo_images
    from regionset.pipelines.tools.demo.server import LoopbackServer

    photos = [img for img in demo_images() if img.name.endswith(".jpg")]
    rates: dict[str, list[float]] = {"local": [], "s3": []}
    with LoopbackServer() as web:
        urls = [web.add(f"b{i}-{photos[i % len(photos)].name}", photos[i % len(photos)].data) for i in range(images)]
        pq.write_table(pa.table({"url": urls}), tmp / "urls.parquet")
        for kind in ("local", "s3"):  # warm-up (imports, models, first connections), not measured
            out = str(tmp / "warm") if kind == "local" else f"s3://{BUCKET}/warm"
            build(load_config(None, _build_overrides(out, tmp / "urls.parquet", steps)))
        for r in range(repeats):
            for kind in ("local", "s3"):
                out = str(tmp / f"local-{r}") if kind == "local" else f"s3://{BUCKET}/run-{r}"
                cfg = load_config(None, _build_overrides(out, tmp / "urls.parquet", steps))
                t0 = time.perf_counter()
                build(cfg)
                rates[kind].append(images / (time.perf_counter() - t0))
    ratios = [s / loc for s, loc in zip(rates["s3"], rates["local"])]
    return {"images": images, "steps": steps, "local_img_s": rates["local"], "s3_img_s": rates["s3"],
            "ratio_median": statistics.median(ratios), "ratios": ratios}


def _fill_table(shards: int) -> dict[str, str]:
    """A resumable table in ``plan/``: images objects, download and detect markers; the producers."""
    import hashlib
    from dataclasses import asdict

    import boto3

    from regionset.common.shard_names import shard_name
    from regionset.pipelines.config import load_config
    from regionset.pipelines.core.shards import Marker
    from regionset.pipelines.definition import build_steps

    s3 = boto3.client("s3")
    steps = [s for s in build_steps(load_config(None, ["steps=[download,detect]"])) if hasattr(s, "output")]
    detect = next(s for s in steps if s.name == "detect")
    cfg = detect.config_hash(f"s3://{BUCKET}/plan")

    def put(i: int) -> None:
        data = f"shard {i}".encode()
        sha = hashlib.sha256(data).hexdigest()
        ih = hashlib.sha256(b"images" + sha.encode()).hexdigest()[:16]  # as input_hash computes it
        name = shard_name(i).replace(".parquet", ".json")
        s3.put_object(Bucket=BUCKET, Key=f"plan/images/{shard_name(i)}", Body=data)
        s3.put_object(Bucket=BUCKET, Key=f"plan/{detect.output}/{shard_name(i)}", Body=b"r")
        for stage, c, h, out_sha in (("download", "c", "i", sha), ("detect", cfg, ih, "z")):
            m = Marker(stage=stage, shard=i, config_hash=c, input_hash=h, output_sha256=out_sha,
                       rows_in=1, rows_out=1, seconds=0.0, finished_at=0.0)
            s3.put_object(Bucket=BUCKET, Key=f"plan/_state/{stage}/{name}", Body=json.dumps(asdict(m)).encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(shards)))
    return {s.output: s.name for s in steps}


def _plan_once(shards: int, producers: dict[str, str], counter: _Requests) -> dict:
    """Build start + planning of ``detect`` in a fresh process state: requests by phase, seconds."""
    from regionset.pipelines.config import load_config
    from regionset.pipelines.core.cleanup import clean_temp_files
    from regionset.pipelines.core.marker_index import load_committed, save_index
    from regionset.pipelines.core.shard_run import plan_stage
    from regionset.pipelines.core.shards import forget_sha256
    from regionset.pipelines.definition import build_steps

    out = f"s3://{BUCKET}/plan"
    stage = next(s for s in build_steps(load_config(None, ["steps=[download,detect]"])) if s.name == "detect")
    phases = {}
    counter.counts.clear()
    t0 = time.perf_counter()
    forget_sha256()
    clean_temp_files(out, producers)
    load_committed(out, producers)
    phases["start"] = dict(counter.counts)
    counter.counts.clear()
    tasks = plan_stage(stage, out, list(range(shards)))
    for name in producers.values():  # as run_stage does after each stage (download's plan is not timed)
        save_index(out, name, [])
    phases["plan"] = dict(counter.counts)
    return {"tasks": len(tasks), "seconds": round(time.perf_counter() - t0, 2), "requests": phases}


def _planning(shards: int, counter: _Requests) -> dict:
    producers = _fill_table(shards)
    cold = _plan_once(shards, producers, counter)  # no index yet: one GET per marker, then the index is saved
    warm = _plan_once(shards, producers, counter)
    return {"shards": shards, "cold": cold, "warm": warm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", default="download,detect,embed")
    ap.add_argument("--skip-throughput", action="store_true", help="only the planning requests")
    ap.add_argument("--shards", type=int, default=10_000, help="0: no planning measurement")
    args = ap.parse_args()
    server, counter = _start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["REGIONSET_CATALOG_DIR"] = tmp
            if not args.skip_throughput:
                print(json.dumps({"throughput": _throughput(args.images, args.repeats, args.steps, Path(tmp))}))
            if args.shards:
                print(json.dumps({"planning": _planning(args.shards, counter)}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
