"""What two builds of one pipeline must agree on: tables, markers, other files, catalog tables.

Used by the executor parity test and the Airflow DAG test. Timings, the run record's config digest
(it names the executor and output folder) and ``regionset.yaml`` (the run's own config) are left out.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from regionset.pipelines.core.shards import STATE_DIR
from regionset.schemas import INPUT, TABLE_DIRS
from tests.helpers import table_hash

TIMING_FIELDS = ("seconds", "finished_at", "timings")
TIMING_KEY = re.compile(r"(_at|seconds)$")
NOT_COMPARED = ("catalog.duckdb", "regionset.yaml")


def markers(out: Path) -> dict[str, dict]:
    """Every completion marker without its timings (``output_sha256`` makes it byte-level)."""
    got = {}
    for f in sorted((out / STATE_DIR).glob("*/part-*.json")):
        m = json.loads(f.read_text())
        got[f"{f.parent.name}/{f.name}"] = {k: v for k, v in m.items() if k not in TIMING_FIELDS}
    return got


def _untimed(obj: object) -> object:
    """A JSON document without its timestamps and durations (keys ending in ``_at`` or ``seconds``)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not TIMING_KEY.search(k)}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def other_files(out: Path) -> dict[str, str]:
    """sha256 of every file that is not a shard, marker or run record (k-means trees, ...)."""
    got = {}
    for f in sorted(out.rglob("*")):
        rel = f.relative_to(out).as_posix()
        if f.is_file() and not rel.startswith(STATE_DIR) and rel not in NOT_COMPARED and not rel.endswith(".parquet"):
            data = f.read_bytes()
            if f.suffix == ".json":
                data = json.dumps(_untimed(json.loads(data)), sort_keys=True).encode()
            got[rel] = hashlib.sha256(data).hexdigest()
    return got


def catalog(out: Path) -> dict[str, object]:
    """The catalog's table contents (sorted rows), stage_state without timings, runs' status."""
    import duckdb

    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    try:
        got: dict[str, object] = {}
        for name in TABLE_DIRS:
            got[name] = sorted(repr(r) for r in con.execute(f"SELECT * FROM {name}").fetchall())
        got["stage_state"] = con.execute(
            "SELECT stage, shard, rows_in, rows_out, config_hash, input_hash, counters FROM stage_state "
            "ORDER BY stage, shard").fetchall()
        got["runs"] = con.execute("SELECT status, shards FROM runs").fetchall()
        return got
    finally:
        con.close()


def snapshot(out: Path) -> dict[str, object]:
    """Everything two equivalent builds of ``out`` must share."""
    folders = {INPUT, *(d for dirs in TABLE_DIRS.values() for d in dirs)}
    tables = {d: table_hash(out, d) for d in sorted(folders) if (out / d).is_dir()}
    return {"tables": tables, "markers": markers(out), "files": other_files(out), "catalog": catalog(out)}


def assert_same(got: dict[str, object], want: dict[str, object]) -> None:
    """Compare two snapshots part by part (so a failure names the part)."""
    assert want["markers"], "the reference build wrote no markers"
    for part in ("tables", "markers", "files", "catalog"):
        a, b = got[part], want[part]
        diff = sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
        assert not diff, f"{part} differ: {diff}"
