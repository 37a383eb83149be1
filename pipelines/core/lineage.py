"""``regionset.yaml``: the resolved config of a run with package versions, model ids and warnings."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import time
import uuid
from typing import Any

import yaml

from regionset.common.files import write_atomic
from regionset.common.typed_config import flat_dict, to_dict
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import write_json

LINEAGE_FILE = "regionset.yaml"
PACKAGES = ("regionset", "pyarrow", "duckdb", "numpy", "torch", "torchvision", "open_clip_torch",
            "ultralytics", "rapidocr-onnxruntime", "onnxruntime", "faiss-cpu", "faiss-gpu", "img2dataset")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the output."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def config_digest(cfg: Any) -> str:
    """Hash of the whole resolved config (renamed keys hashed at their old place: ``flat_dict``;
    ``NOT_HASHED`` keys left out, ``HASH_OMIT_DEFAULT`` keys only when set)."""
    flat = flat_dict(cfg)
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_lineage(out: Output, cfg: Any, models: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Write ``OUT/regionset.yaml`` (atomically) and return what was written."""
    doc = {
        "regionset_lineage": 1,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_hash": config_digest(cfg),
        "warnings": warnings,
        "models": models,
        "versions": package_versions(),
        "config": to_dict(cfg),
    }
    write_atomic(out / LINEAGE_FILE, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode())
    return doc


def new_run_id(started_at: float) -> str:
    """A run id: the UTC start time plus a random suffix (``20261130T041500-3fa2c1``)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_at)) + "-" + uuid.uuid4().hex[:6]


def add_to_lineage(out: Output, key: str, value: Any, warnings: list[str], replaces: str = "") -> None:
    """Record a fact learnt during the run (e.g. the fitted tree) and its warnings in ``regionset.yaml``.

    Args:
        out: the output folder (a missing ``regionset.yaml`` is started with just these).
        key: top-level key to set.
        value: its value (YAML-serialisable).
        warnings: warnings to add (each once).
        replaces: earlier warnings starting with this are dropped first (a refit tree's old ones).
    """
    path = out / LINEAGE_FILE
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        doc = {"regionset_lineage": 1}
    doc[key] = value
    old = [w for w in doc.get("warnings") or [] if not (replaces and str(w).startswith(replaces))]
    doc["warnings"] = list(dict.fromkeys([*old, *warnings]))
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode())


def append_run(out: Output, record: dict[str, Any]) -> None:
    """Append one run record to ``_state/runs/`` (one JSON file per run; read by the catalog)."""
    write_json(record, out / "_state" / "runs" / f"{record['run_id']}.json")
