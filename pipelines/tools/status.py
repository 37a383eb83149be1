"""``regionset status OUT``: stage × shard progress, counters, failures by reason."""

from __future__ import annotations

import json
from collections import Counter

import yaml

from regionset.common.storage import is_remote
from regionset.models.kmeans_index import read_meta
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import console, print_table
from regionset.pipelines.core.shards import ATTEMPTS_DIR, STATE_DIR, list_shards, read_marker
from regionset.pipelines.steps import STEP_NAMES
from regionset.schemas import INPUT
from regionset.schemas.tables import KMEANS


def stage_names(out: Output) -> list[str]:
    """Stages that left markers in ``out``, in the order their first marker was written."""
    state = out / STATE_DIR
    if is_remote(state):  # object stores keep no folder times: the pipeline's own order
        # marker folders only: not runs/, the lock, nor a global step's completion file (``*.json``)
        names = {p.name for p in state.iterdir() if not p.suffix} - {"runs", "build.lock", ATTEMPTS_DIR}
        return [n for n in STEP_NAMES if n in names] + sorted(names - set(STEP_NAMES))
    dirs = [p for p in state.glob("*") if p.is_dir() and p.name not in ("runs", ATTEMPTS_DIR)]
    return [p.name for p in sorted(dirs, key=lambda p: min((f.stat().st_mtime for f in p.glob("*.json")),
                                                           default=0))]


def run_warnings(out: Output) -> list[str]:
    """The warnings of ``regionset.yaml`` (random weights, a degenerate k-means tree, ...)."""
    try:
        doc = yaml.safe_load((out / LINEAGE_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [str(w) for w in doc.get("warnings") or []]


def collect_status(out: Output) -> dict:
    """Per stage: shards done/pending, rows, counters (a dict, also used by tests and the report)."""
    out = Output.of(out)
    if not (out / STATE_DIR).exists():
        raise FileNotFoundError(f"{out} is not a regionset output folder (no {STATE_DIR}/)")
    shards = list_shards(out, INPUT)
    result = {"shards": len(shards), "warnings": run_warnings(out), "stages": {}}
    for stage in stage_names(out):
        counters: Counter[str] = Counter()
        timings: Counter[str] = Counter()
        done = rows_in = rows_out = 0
        seconds = 0.0
        index = out.markers(stage).committed() if is_remote(out) else None  # one listing + the stage's index
        for s in shards:
            m = index.get(s) if index is not None else read_marker(out, stage, s)
            if m is None:
                continue
            done += 1
            rows_in += m.rows_in
            rows_out += m.rows_out
            seconds += m.seconds
            counters.update(m.counters)
            timings.update(m.timings)
        result["stages"][stage] = {"done": done, "pending": len(shards) - done, "rows_in": rows_in,
                                   "rows_out": rows_out, "seconds": round(seconds, 2),
                                   "counters": dict(counters), "timings": dict(timings)}
        if counters.get("beam_check:rows"):
            result["stages"][stage]["beam_check"] = beam_check(counters)
    result["kmeans"] = read_meta(out / KMEANS)  # the fitted tree's kmeans.json (None before fit_kmeans)
    return result


def beam_check(counters: Counter[str] | dict[str, int]) -> dict[str, float]:
    """The assign stage's sampled exact check of the beam search: rows, % same leaf, inertia ratio
    (beam over exact; 1.0 = as good as exact)."""
    rows = counters["beam_check:rows"]
    exact = counters.get("beam_check:exact_inertia", 0)
    return {"rows": rows, "same_leaf_pct": round(100.0 * counters.get("beam_check:same_leaf", 0) / rows, 2),
            "inertia_ratio": round(counters.get("beam_check:beam_inertia", 0) / exact, 5) if exact else 1.0}


def print_status(out: Output, as_json: bool = False) -> dict:
    """Print the status tables of ``out``."""
    st = collect_status(out)
    if as_json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return st
    for w in st["warnings"]:  # first, as in the report
        console.print(f"[bold red]WARNING[/]: {w}")
    rows = [[name, s["done"], s["pending"], s["rows_in"], s["rows_out"], f"{s['seconds']:.1f}"]
            for name, s in st["stages"].items()]
    print_table(f"{out}: {st['shards']} shards", ["stage", "done", "pending", "rows in", "rows out", "seconds"], rows)
    fails = [[name, k.split(":", 1)[0], k.split(":", 1)[1], v]
             for name, s in st["stages"].items() for k, v in sorted(s["counters"].items())
             if ":" in k and k != "status:success"]
    if fails:
        print_table("counters and failures by reason", ["stage", "kind", "reason", "count"], fails)
    if st["kmeans"]:
        from regionset.pipelines.kmeans.fit_choice import describe

        console.print(describe(st["kmeans"]))
    for name, s in st["stages"].items():
        if "beam_check" in s:
            b = s["beam_check"]
            console.print(f"{name}: beam search vs exact on {b['rows']} sampled rows: {b['same_leaf_pct']} % "
                          f"same leaf, inertia ratio {b['inertia_ratio']}")
    return st
