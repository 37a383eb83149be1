"""The ``group_duplicates`` global step: ``hashes/`` -> ``duplicates/`` (one file per shard), incremental.

``OUT/_state/group_duplicates.json`` records the grouping settings and each shard's hashes-file
sha256. A rerun regroups only from the first shard whose hashes changed (or that is new): rows of
earlier shards depend only on earlier keys (``group.py``), so their files are left untouched and the
stages that read them are not redone. Changed settings regroup everything, and so does a build whose
``dedup.scheme: auto`` resolves differently (the number of hashes crossed ``dedup.auto_limit``).

The state file is also the commit of ``duplicates/``: deleted before any file is rewritten, written
last. On an object store (no rename) duplicates objects no state file commits are never read, and
the next build deletes them (``regionset.pipelines.core.cleanup.clean_temp_files``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from regionset.common.storage import is_remote
from regionset.pipelines.core.catalog import register_storage
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.outputs import GROUP_DUPLICATES_STATE
from regionset.pipelines.core.shards import (
    STATE_DIR,
    file_sha256,
    list_shards,
    shard_path,
    write_json,
    write_table,
)
from regionset.pipelines.dedup.against import against_hashes
from regionset.pipelines.dedup.candidates import resolve_scheme
from regionset.pipelines.dedup.group import find_duplicates
from regionset.pipelines.executors.base import Executor
from regionset.schemas import DUPLICATES, HASHES, duplicates_schema
from regionset.stages.dedup import DedupConfig

STATE_FILE = GROUP_DUPLICATES_STATE


def _settings(dc: DedupConfig, scheme: str, eval_digest: str) -> str:
    # "scheme" only when not bands, so builds grouped before schemes existed (bands) are not regrouped
    payload = json.dumps({"threshold": dc.threshold, "bands": dc.bands, "border_tol": dc.border_tol,
                          "against": eval_digest, "version": 1}
                         | ({} if scheme == "bands" else {"scheme": scheme, "halvings": dc.halvings}),
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer (a local file or an object-store object)."""
    with path.open("rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def group_duplicates(out: Output, dc: DedupConfig, executor: Executor, shards: list[int]) -> dict[str, Any]:
    """Group the hashes of ``shards`` into ``OUT/duplicates``; return a summary.

    Args:
        out: the output folder.
        dc: the ``dedup`` section.
        executor: the build's executor (the grouping is one DuckDB query in this process).
        shards: the build's shard ids.
    """
    present = set(list_shards(out, HASHES))
    hashed = [s for s in shards if s in present]
    if not hashed:
        return {"skipped": "no hashes"}
    evals = against_hashes(dc.against, dc.border_tol) if dc.against else None
    eval_digest = hashlib.sha256(repr(sorted(zip(evals["src"].to_pylist(), evals["phash"].to_pylist()))
                                      if evals is not None else []).encode()).hexdigest()
    # auto resolves on the number of hashes; a build that crosses auto_limit regroups everything
    n = sum(_rows(shard_path(out, HASHES, s)) for s in hashed)
    scheme = resolve_scheme(dc.scheme, n, dc.auto_limit)
    settings = _settings(dc, scheme, eval_digest)
    state_path = out / STATE_DIR / STATE_FILE
    old = json.loads(state_path.read_text()) if state_path.exists() else {}
    sums = {str(s): file_sha256(shard_path(out, HASHES, s)) for s in hashed}
    prior = old.get("shards", {}) if old.get("settings") == settings else {}
    have = set(list_shards(out, DUPLICATES))
    changed = [s for s in hashed if prior.get(str(s)) != sums[str(s)] or s not in have]
    if not changed:
        return {"regrouped_shards": 0, "reused": True}
    s0 = min(changed)
    # DuckDB spills next to the output on disk; for an object store, to a local temp folder
    tmp = Path(tempfile.mkdtemp(prefix="regionset-dedup-")) if is_remote(out) else out / "_tmp" / "dedup"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        register_storage(con, out)  # remote hashes/duplicates files are read through fsspec
        con.execute(f"SET memory_limit = '{dc.memory_limit}'")
        con.execute(f"SET temp_directory = '{tmp}'")
        if evals is not None:
            con.register("eval_hashes", evals)
        find_duplicates(con, [str(shard_path(out, HASHES, s)) for s in hashed], f"{s0:05d}", dc.threshold,
                        dc.bands, [str(shard_path(out, DUPLICATES, s)) for s in hashed if s < s0],
                        "eval_hashes" if evals is not None else None, scheme, dc.halvings)
        counts = dict(con.execute("SELECT kind, count(*) FROM dups GROUP BY kind").fetchall())
        redo = [s for s in hashed if s >= s0]
        state_path.unlink(missing_ok=True)  # uncommitted until the new state is written, last
        for s in redo:
            t = con.sql("SELECT * FROM dups WHERE key >= $lo AND key < $hi ORDER BY key, kind",
                        params={"lo": f"{s:05d}", "hi": f"{s + 1:05d}"}).to_arrow_table()
            write_table(t.cast(duplicates_schema()), shard_path(out, DUPLICATES, s))
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
    write_json({"settings": settings, "shards": sums}, state_path)
    return {"regrouped_shards": len(redo), "from_shard": s0, "scheme": scheme, **{f"dups:{k}": v for k, v in sorted(counts.items())}}
