"""Benchmark: the DuckDB duplicate grouping (pipelines/dedup/group.py) on N synthetic image hashes.

Writes N rows of (key, sha256, pixel_sha256, phash) in 1M-row Parquet shards (uniform random 64-bit
pHashes; 1% exact copies and 1% near copies with 1-3 flipped bits), then times ``find_duplicates``
in this process and reports wall time and peak RSS (``ru_maxrss``; the generator runs in a child
process so it does not count). Usage: ``python bench/dedup.py --n 1000000 [--threshold 8]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, ahead of bench/stages.py
from pipelines.dedup.group import find_duplicates  # noqa: E402
from schemas import hashes_schema  # noqa: E402

CHUNK = 1_000_000


def _generate(folder: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for shard, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        ph = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, m, dtype=np.int64)
        pix = rng.integers(0, 2**62, m, dtype=np.int64)
        k = m // 100  # 1% exact copies (same pixels) and 1% near copies of rows of this shard
        src = rng.integers(0, m, 2 * k)
        ph[-k:], pix[-k:] = ph[src[:k]], pix[src[:k]]
        flips = np.zeros(k, np.int64)
        for _ in range(3):
            flips |= np.left_shift(np.int64(1), rng.integers(0, 63, k)).astype(np.int64)
        ph[-2 * k:-k] = ph[src[k:]] ^ flips
        keys = [f"{shard:05d}{i:07d}" for i in range(m)]
        pix_hex = [f"{v:064x}" for v in pix.tolist()]
        t = pa.table([keys, pix_hex, pix_hex, pa.array(ph)], schema=hashes_schema())
        pq.write_table(t, Path(folder) / f"part-{shard:05d}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--memory-limit", default="2GB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        t0 = time.perf_counter()
        p = mp.get_context("spawn").Process(target=_generate, args=(tmp, args.n, 0))
        p.start()
        p.join()
        gen = time.perf_counter() - t0
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET temp_directory = '{tmp}/spill'")
        con.execute("SET threads = 2")
        t0 = time.perf_counter()
        find_duplicates(con, sorted(str(f) for f in Path(tmp).glob("part-*.parquet")), "", args.threshold)
        seconds = time.perf_counter() - t0
        counts = dict(con.execute("SELECT kind, count(*) FROM dups GROUP BY kind").fetchall())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"n={args.n:,} threshold={args.threshold} generate={gen:.1f}s group={seconds:.1f}s "
          f"({args.n / seconds:,.0f} hashes/s) peak_rss={rss:.0f} MiB (before grouping {rss0:.0f} MiB) "
          f"duplicates={counts}")


if __name__ == "__main__":
    main()
