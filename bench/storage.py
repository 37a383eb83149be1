"""Benchmark: builds writing to local disk vs a loopback S3 server (moto), and planning requests.

1. Throughput: the same loopback build (``--steps``, default ``download``, ``--images`` images served
   on loopback) into a local folder and into ``s3://bench/run-N``, alternated ``--repeats`` times;
   images/s of each and the median ratio S3/local.
2. Planning: ``--shards`` input objects (and as many completion markers) in ``s3://bench/plan``;
   ``plan_stage`` of ``detect`` in a fresh process state; the server's requests by kind (LIST pages,
   HEAD, GET, PUT), counted from its request log.

Usage: ``python bench/storage.py --images 300 --repeats 3 --shards 10000``.
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


def _throughput(images: int, repeats: int, steps: str, tmp: Path) -> dict:
    from pipelines.build import build
    from pipelines.config import load_config
    from pipelines.demo.server import LoopbackServer
    from tests.conftest import make_jpeg

    rates: dict[str, list[float]] = {"local": [], "s3": []}
    with LoopbackServer() as web:
        urls = [web.add(f"b{i}.jpg", make_jpeg(256 + i % 64, 192, (i % 255, 80, 40))) for i in range(images)]
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"url": urls}), tmp / "urls.parquet")
        for kind in ("local", "s3"):  # warm-up (imports, first connections), not measured
            out = str(tmp / "warm") if kind == "local" else f"s3://{BUCKET}/warm"
            build(load_config(None, [f"output={out}", f"input.path={tmp / 'urls.parquet'}", "input.shard_size=50",
                                     f"steps=[{steps}]", "download.allow_loopback=true", "progress=false"]))
        for r in range(repeats):
            for kind in ("local", "s3"):
                out = str(tmp / f"local-{r}") if kind == "local" else f"s3://{BUCKET}/run-{r}"
                cfg = load_config(None, [f"output={out}", f"input.path={tmp / 'urls.parquet'}", "input.shard_size=50",
                                         f"steps=[{steps}]", "download.allow_loopback=true", "progress=false"])
                t0 = time.perf_counter()
                build(cfg)
                rates[kind].append(images / (time.perf_counter() - t0))
    ratios = [s / loc for s, loc in zip(rates["s3"], rates["local"])]
    return {"images": images, "steps": steps, "local_img_s": rates["local"], "s3_img_s": rates["s3"],
            "ratio_median": statistics.median(ratios), "ratios": ratios}


def _planning(shards: int, counter: _Requests) -> dict:
    import boto3

    from common.shard_names import shard_name
    from pipelines.config import load_config
    from pipelines.definition import build_steps
    from pipelines.executors.base import plan_stage
    from pipelines.shards import forget_sha256

    s3 = boto3.client("s3")
    marker = json.dumps({"stage": "detect", "shard": 0, "config_hash": "x", "input_hash": "y",
                         "output_sha256": "z", "rows_in": 0, "rows_out": 0, "seconds": 0.0})

    def put(i: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=f"plan/images/{shard_name(i)}", Body=b"x")
        s3.put_object(Bucket=BUCKET, Key=f"plan/_state/detect/{shard_name(i).replace('.parquet', '.json')}",
                      Body=marker.encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(shards)))
    stage = next(s for s in build_steps(load_config(None, ["steps=[download,detect]"])) if s.name == "detect")
    forget_sha256()
    counter.counts.clear()
    t0 = time.perf_counter()
    tasks = plan_stage(stage, f"s3://{BUCKET}/plan", list(range(shards)))
    return {"shards": shards, "tasks": len(tasks), "seconds": time.perf_counter() - t0,
            "requests": dict(counter.counts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", default="download")
    ap.add_argument("--shards", type=int, default=10_000)
    args = ap.parse_args()
    server, counter = _start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["REGIONSET_CATALOG_DIR"] = tmp
            print(json.dumps({"throughput": _throughput(args.images, args.repeats, args.steps, Path(tmp))}))
            print(json.dumps({"planning": _planning(args.shards, counter)}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
