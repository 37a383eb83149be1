"""Benchmark: duplicate grouping (pipelines/dedup/group.py) on N synthetic image hashes.

Writes N rows of (key, sha256, pixel_sha256, phash) in 1M-row Parquet shards: uniform random 64-bit
pHashes; per shard 1 % exact copies (same pixels) and ``--per-distance`` planted near copies at each
distance 1..8 (exactly d flipped bits of an earlier row of the shard). The generator runs in a child
process so it does not count. Then, in this process, one engine groups them and the script reports
wall time, peak RSS (``ru_maxrss``) and recall per planted distance:
- ``--scheme bands|halves`` (``--halvings 1|2``): ``find_duplicates`` in DuckDB; a planted copy counts as found when
  it ends in the same group as its source (same root);
- ``--scheme faiss``: a FAISS ``IndexBinaryMultiHash`` (2 x 32-bit halves, ``nflip=1``: the same
  candidates as ``halves``), range search in batches of 1M queries; found = the source is among the
  copy's results. Near-candidate search only (no exact groups, no pointer jumping).
Usage: ``python bench/dedup.py --n 1000000 --scheme halves [--halvings 1] [--threshold 8] [--per-distance 1000]``.
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
from regionset.pipelines.dedup.group import find_duplicates  # noqa: E402
from regionset.schemas import hashes_schema  # noqa: E402

CHUNK = 1_000_000
DISTANCES = range(1, 9)


def _generate(folder: str, n: int, per_distance: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = []
    for shard, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        ph = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, m, dtype=np.int64, endpoint=True)
        pix = rng.integers(0, 2**62, m, dtype=np.int64)
        k, p = m // 100, per_distance * len(DISTANCES)
        base = m - k - p  # rows [0, base) are originals; then near copies, then exact copies
        src = rng.integers(0, base, k + p)
        ph[m - k:], pix[m - k:] = ph[src[:k]], pix[src[:k]]
        d = np.repeat(np.array(DISTANCES), per_distance)
        bits = np.argsort(rng.random((p, 64)), axis=1)  # a random order of the 64 bits per copy
        flips = np.where(np.arange(64) < d[:, None], np.left_shift(np.uint64(1), bits.astype(np.uint64)),
                         np.uint64(0))
        ph[base:m - k] = (ph[src[k:]].view(np.uint64) ^ np.bitwise_or.reduce(flips, axis=1)).view(np.int64)
        keys = [f"{shard:05d}{i:07d}" for i in range(m)]
        pix_hex = [f"{v:064x}" for v in pix.tolist()]
        t = pa.table([keys, pix_hex, pix_hex, pa.array(ph)], schema=hashes_schema())
        pq.write_table(t, Path(folder) / f"part-{shard:05d}.parquet")
        truth.append(pa.table({"copy": [keys[i] for i in range(base, m - k)],
                               "src": [keys[i] for i in src[k:].tolist()], "d": d}))
    pq.write_table(pa.concat_tables(truth), Path(folder) / "truth.parquet")


def _duckdb(tmp: str, files: list[str], scheme: str, threshold: int, memory_limit: str,
            halvings: int) -> tuple[float, dict, dict]:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{tmp}/spill'")
    con.execute("SET threads = 2")
    t0 = time.perf_counter()
    find_duplicates(con, files, "", threshold, scheme=scheme, halvings=halvings)
    seconds = time.perf_counter() - t0
    counts = dict(con.execute("SELECT kind, count(*) FROM dups GROUP BY kind").fetchall())
    found = con.execute(f"""SELECT t.d, avg(CASE WHEN coalesce(a.duplicate_of, t.copy) = coalesce(b.duplicate_of, t.src)
                                             THEN 1 ELSE 0 END)
        FROM read_parquet('{tmp}/truth.parquet') t
        LEFT JOIN dups a ON a.key = t.copy AND a.kind = 'near' LEFT JOIN dups b ON b.key = t.src AND b.kind = 'near'
        GROUP BY t.d ORDER BY t.d""").fetchall()
    return seconds, counts, dict(found)


def _row(key: str) -> int:
    return int(key[:5]) * CHUNK + int(key[5:])


def _faiss(tmp: str, files: list[str], threshold: int) -> tuple[float, dict, dict]:
    import faiss

    t0 = time.perf_counter()
    faiss.omp_set_num_threads(2)
    index = faiss.IndexBinaryMultiHash(64, 2, 32)
    index.nflip = 1
    for f in files:  # hashes enter Python one shard (1M x 8 bytes) at a time; rows = shard * CHUNK + i
        index.add(pq.read_table(f, columns=["phash"]).column("phash").to_numpy().view(np.uint8).reshape(-1, 8))
    pairs, near = [], 0
    for shard, f in enumerate(files):  # queries in batches of one shard
        q = pq.read_table(f, columns=["phash"]).column("phash").to_numpy().view(np.uint8).reshape(-1, 8)
        lims, _, ids = index.range_search(q, threshold + 1)
        qi = np.repeat(np.arange(len(q)) + shard * CHUNK, np.diff(lims).astype(np.int64))
        smaller = ids < qi
        near += len(np.unique(qi[smaller]))
        pairs.append(np.stack([qi[smaller], ids[smaller]], 1))
    seconds = time.perf_counter() - t0
    found = {(int(a), int(b)) for a, b in np.concatenate(pairs).tolist()}
    per_d: dict[int, list[bool]] = {}
    for r in pq.read_table(f"{tmp}/truth.parquet").to_pylist():
        per_d.setdefault(r["d"], []).append((_row(r["copy"]), _row(r["src"])) in found)
    return seconds, {"near (incl. exact copies)": near}, {d: float(np.mean(v)) for d, v in sorted(per_d.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--scheme", choices=["bands", "halves", "faiss"], default="halves")
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--per-distance", type=int, default=1000, help="planted near copies per distance per 1M")
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--halvings", type=int, default=2, help="halves scheme: 1 or 2 ways of halving the hash")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        t0 = time.perf_counter()
        p = mp.get_context("spawn").Process(target=_generate, args=(tmp, args.n, args.per_distance, 0))
        p.start()
        p.join()
        gen = time.perf_counter() - t0
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        files = sorted(str(f) for f in Path(tmp).glob("part-*.parquet"))
        if args.scheme == "faiss":
            seconds, counts, recall = _faiss(tmp, files, args.threshold)
        else:
            seconds, counts, recall = _duckdb(tmp, files, args.scheme, args.threshold, args.memory_limit, args.halvings)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    halvings = f" halvings={args.halvings}" if args.scheme == "halves" else ""
    print(f"n={args.n:,} scheme={args.scheme}{halvings} threshold={args.threshold} generate={gen:.1f}s "
          f"group={seconds:.1f}s ({args.n / seconds:,.0f} hashes/s) peak_rss={rss:.0f} MiB "
          f"(before grouping {rss0:.0f} MiB) duplicates={counts}")
    print("recall by distance: " + " ".join(f"{d}:{r:.3f}" for d, r in recall.items()))


if __name__ == "__main__":
    main()
