"""Which data a checkpoint was trained on: the build's run id, config hash, centroid hash and shards.

A build leaves its facts in its output folder (README "Lineage"): ``OUT/regionset.yaml`` (the
build's ``config_hash``; ``kmeans_tree.centroids_sha256`` once k-means ran), one record per run in
``OUT/_state/runs/<run_id>.json`` and a ``pack`` completion marker per train shard in
``OUT/_state/pack/part-NNNNN.json`` whose ``output_sha256`` is the hash of the shard's bytes.
:func:`data_lineage` gathers them (rank 0 only, once per run); every checkpoint's ``meta.json``
carries the result under ``lineage``, and ``regionset train KIND CONFIG --dry-run`` prints it.
The build run is the newest run record, or the one ``data.build_run`` names (the training DAG names the
run whose Airflow asset event started it); a named run the output has no record of is an error.
Shards written without a build (``training/synthetic.py``) have no markers: their hashes are
``null`` and the build facts are absent, which the lineage says instead of guessing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from regionset.common.shard_names import STATE_DIR
from regionset.common.storage import RemotePath, as_path
from regionset.schemas.tables import TRAIN
from regionset.training.data import PACK_STEP
from regionset.training.run_files import children, read_text_or_none

BUILD_LINEAGE = "regionset.yaml"


def config_hash(config: dict) -> str:
    """A short, stable hash of a resolved training config (its JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _build_root(shard_paths: list[str]) -> Any:
    """The build's output folder: the parent of the shards' ``train`` folder (or their folder)."""
    folder = as_path(shard_paths[0]).parent
    return folder.parent if folder.name == TRAIN else folder


def _newest_run(root: Any) -> dict | None:
    runs = root / STATE_DIR / "runs"
    records = []
    for name in children(runs):
        text = read_text_or_none(runs / name) if name.endswith(".json") else None
        try:
            if text:
                records.append(json.loads(text))
        except ValueError:
            continue
    return max(records, key=lambda r: float(r.get("finished_at") or 0), default=None)


def _named_run(root: Any, run_id: str) -> dict:
    """The run record ``run_id`` of the build at ``root``; ``ValueError`` naming it when there is none."""
    text = read_text_or_none(root / STATE_DIR / "runs" / f"{run_id}.json")
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise ValueError(f"data.build_run={run_id}: no run record {root}/{STATE_DIR}/runs/{run_id}.json "
                         "(not a finished build of these shards)")
    return record


def _marker_sha(root: Any, name: str) -> str | None:
    text = read_text_or_none(root / STATE_DIR / PACK_STEP / name.replace(".parquet", ".json"))
    try:
        return json.loads(text).get("output_sha256") if text else None
    except ValueError:
        return None


def data_lineage(shard_paths: list[str], rows: list[int], build_run: str = "") -> dict[str, Any]:
    """The build facts and the exact shard list (name, rows, marker sha256) of a training run.

    Args:
        shard_paths: the shards the run reads, in stream order (paths or URLs).
        rows: their row counts.
        build_run: the build run to name (its record must exist); empty: the newest run record.
    """
    if not shard_paths:
        return {"build_dir": None, "shards": []}
    root = _build_root(shard_paths)
    try:
        doc = yaml.safe_load(read_text_or_none(root / BUILD_LINEAGE) or "") or {}
    except yaml.YAMLError:
        doc = {}
    run = _named_run(root, build_run) if build_run else _newest_run(root) or {}
    return {
        "build_dir": str(root) if isinstance(root, RemotePath) else str(root.resolve()),
        "build_run_id": run.get("run_id"),
        "build_run_named": bool(build_run),  # false: the newest run record was taken
        "build_config_hash": (run.get("config_hash") if build_run else None) or doc.get("config_hash")
        or run.get("config_hash"),
        "centroids_sha256": (doc.get("kmeans_tree") or {}).get("centroids_sha256"),
        "shards": [{"name": as_path(p).name, "rows": int(r), "marker_sha256": _marker_sha(root, as_path(p).name)}
                   for p, r in zip(shard_paths, rows, strict=True)],
    }
