"""``regionset status --watch`` at 100,000 shards: seconds per refresh of an incremental watch.

Writes a synthetic output folder (``--shards`` input shards, every ``download`` marker and half of
the ``detect`` markers, each with a ``finished_at``), then times: the watcher's first refresh (reads
every marker once), refreshes with nothing new, refreshes after ``--new`` more markers each, and for
comparison one plain ``regionset status`` pass (``collect_status``: reads every marker).

    python bench/watch_scale.py --shards 100000 --refreshes 5 --new 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from regionset.common.shard_names import STATE_DIR, shard_name
from regionset.pipelines.tools.status import collect_status
from regionset.pipelines.tools.watch import BuildWatch
from regionset.schemas import INPUT

T0 = 1_800_000_000.0


def marker(stage: str, shard: int, t: float) -> str:
    return json.dumps({"stage": stage, "shard": shard, "config_hash": "c", "input_hash": "i", "output_sha256": "s",
                       "rows_in": 1000, "rows_out": 5300, "seconds": 4.0, "finished_at": t,
                       "counters": {"status:success": 990, "status:failed_to_download": 10}, "timings": {}})


def write_state(out: Path, shards: int) -> None:
    for d in (out / INPUT, out / STATE_DIR / "download", out / STATE_DIR / "detect"):
        d.mkdir(parents=True, exist_ok=True)
    (out / "regionset.yaml").write_text(yaml.safe_dump({"config": {"steps": ["download", "detect"]}}))
    for i in range(shards):
        (out / INPUT / shard_name(i)).write_bytes(b"")
        (out / STATE_DIR / "download" / shard_name(i).replace(".parquet", ".json")).write_text(
            marker("download", i, T0 + i * 0.01))
        if i < shards // 2:
            (out / STATE_DIR / "detect" / shard_name(i).replace(".parquet", ".json")).write_text(
                marker("detect", i, T0 + 1000 + i * 0.02))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=100_000)
    ap.add_argument("--refreshes", type=int, default=5)
    ap.add_argument("--new", type=int, default=100, help="markers added before each 'with new' refresh")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="regionset-watch-bench-"))
    try:
        out = tmp / "out"
        t = time.perf_counter()
        write_state(out, args.shards)
        print(f"wrote {args.shards:,} input shards + {args.shards + args.shards // 2:,} markers in "
              f"{time.perf_counter() - t:.1f} s ({os.cpu_count()} cores)")
        w = BuildWatch(out)
        now = T0 + 1000 + args.shards * 0.02
        t = time.perf_counter()
        etas = w.refresh(now)
        print(f"first refresh (reads every marker once): {time.perf_counter() - t:.3f} s; "
              f"detect {etas[1].done:,}/{etas[1].total:,}")
        time.sleep(2.1)  # past the same-mtime-tick guard, as between real refreshes
        idle = []
        for _ in range(args.refreshes):
            t = time.perf_counter()
            w.refresh(now)
            idle.append(time.perf_counter() - t)
        print(f"refresh, nothing new: median {statistics.median(idle):.4f} s, max {max(idle):.4f} s "
              f"({args.refreshes} refreshes)")
        busy = []
        nxt = args.shards // 2
        for _ in range(args.refreshes):
            for _ in range(args.new):
                (out / STATE_DIR / "detect" / shard_name(nxt).replace(".parquet", ".json")).write_text(
                    marker("detect", nxt, now))
                nxt += 1
            t = time.perf_counter()
            etas = w.refresh(now)
            busy.append(time.perf_counter() - t)
        print(f"refresh, {args.new} new markers each: median {statistics.median(busy):.4f} s, max {max(busy):.4f} s; "
              f"detect {etas[1].done:,}/{etas[1].total:,}, reads {w.feeds['detect'].reads:,}")
        t = time.perf_counter()
        collect_status(out)
        print(f"plain `regionset status` pass (reads every marker): {time.perf_counter() - t:.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
