"""Small helpers shared by tests: URL lists, one-call builds, table content hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_urls(folder: Path, urls: list[str], captions: list[str] | None = None) -> Path:
    """Write a ``urls.parquet`` input list."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": captions or [f"caption {i}" for i in range(len(urls))]}), path)
    return path


def table_hash(out: Path, folder: str) -> str:
    """Order-independent content hash of every shard of a table folder."""
    rows = []
    for f in sorted((out / folder).glob("part-*.parquet")):
        t = pq.read_table(f)
        for r in t.to_pylist():
            rows.append(repr(sorted(r.items())))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def download_only(out: Path, urls: Path, shard_size: int = 4, extra: list[str] | None = None):
    """A BuildConfig that runs only the download step from loopback."""
    from regionset.pipelines.config import load_config

    return load_config(None, [f"output={out}", f"input.path={urls}", f"input.shard_size={shard_size}",
                              "steps=[download]", "download.allow_loopback=true", "download.timeout=2",
                              "progress=false", *(extra or [])])


def run_fit_kmeans(out, cfg, shards, executor=None):
    """``fit_kmeans`` as a build runs it: ``cfg.kmeans`` on ``executor`` (default: the one
    ``cfg.executor`` names, closed afterwards), with ``cfg.progress``."""
    from regionset.pipelines.executors.factory import make_executor
    from regionset.pipelines.kmeans.fit import fit_kmeans

    if executor is not None:
        return fit_kmeans(out, cfg.kmeans, executor, shards, progress=cfg.progress)
    with make_executor(cfg.executor, cfg.progress) as ex:
        return fit_kmeans(out, cfg.kmeans, ex, shards, progress=cfg.progress)


def in_process():
    """The in-process executor a global step gets in a unit test (nothing to close)."""
    from regionset.pipelines.executors.local import LocalExecutor

    return LocalExecutor(1, show_progress=False)
