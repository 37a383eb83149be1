"""One stage on one shard, in this process: decide which shards to (re)do, and do one.

A shard is skipped when its completion marker exists, its output file exists, and both the stage's
config hash and the hash of its input files match; anything else is (re)done. Doing a shard is:
read inputs -> ``prepare`` -> ``process`` -> validate schema -> attempt object -> conditional
marker -> the winner's object copied to the shard file.
Every executor runs shards through ``run_shard`` (``pipelines/executors/base.py``: the contract).
Two attempts of one shard may run at once: one marker wins and describes the shard file
(``pipelines/core/attempts.py``).
A fused stage (one with ``parts``: ``stages/regions.py``) is planned and done part by part: each
part writes its own table and marker, as if it had run alone.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from regionset.common import store_retry
from regionset.common.shard_names import shard_name
from regionset.common.storage import is_remote
from regionset.pipelines.core.attempts import (
    attempt_rel,
    commit_marker,
    discard,
    promote,
    settle,
    staged_names,
    write_attempt,
)
from regionset.pipelines.core.failpoints import duplicate_attempt, failpoint
from regionset.pipelines.core.marker_index import MarkerIndex
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import (
    ROW_GROUP_ROWS,
    Marker,
    known_sha256,
    list_shards,
    read_marker,
    read_table,
    shard_path,
)
from regionset.schemas import validate_table
from regionset.stages.base import Stage


@dataclass(frozen=True)
class ShardTask:
    """One stage × shard to run, with the hashes its marker will carry."""

    shard: int
    config_hash: str
    input_hash: str
    stale_marker: bool = False  # a marker of an earlier run exists: swapped for the new one (attempts.py)


WAITING_NAMED = 3
"""Waiting shards a ``WaitingError`` names (it gives the count of all)."""


class WaitingError(RuntimeError):
    """Shards of a stage still wait for an input that a stage of the same build was to write (exit 1)."""


@dataclass
class StageReport:
    """What one stage did in one run (for the summary table)."""

    stage: str
    done: int = 0
    skipped: int = 0
    waiting: int = 0
    waiting_shards: list[int] = field(default_factory=list)  # the first WAITING_NAMED of them
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0
    counters: Counter = field(default_factory=Counter)
    store_retries: Counter = field(default_factory=Counter)  # object-store retries by reason

    def add(self, marker: Marker) -> None:
        self.done += 1
        self.store_retries.update({k.removeprefix(store_retry.RETRY_PREFIX): v for k, v in marker.timings.items()
                                   if k.startswith(store_retry.RETRY_PREFIX)})
        self.rows_in += marker.rows_in
        self.rows_out += marker.rows_out
        self.seconds += marker.seconds
        self.counters.update(marker.counters)


def input_hash(out: Output, stage: Stage, shard: int, listing: Listing | None = None) -> str | None:
    """Hash of the shard's input files (None if one is missing: upstream not done).

    Args:
        out: the output folder or prefix.
        stage: the stage.
        shard: the shard id.
        listing: which shard files exist (on an object store: one listing per folder, no HEAD per shard).
    """
    exists = listing.exists if listing is not None else (lambda folder, s: shard_path(out, folder, s).exists())
    h = hashlib.sha256()
    for folder in stage.inputs:
        if not exists(folder, shard):
            return None
        h.update(folder.encode())
        h.update(known_sha256(shard_path(out, folder, shard)).encode())
    for folder in getattr(stage, "optional_inputs", ()):  # read when present (e.g. duplicates)
        if exists(folder, shard):
            h.update(folder.encode())
            h.update(known_sha256(shard_path(out, folder, shard)).encode())
    return h.hexdigest()[:16]


class Listing:
    """Shard files present per table folder, from one paginated listing per folder (object stores)."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._seen: dict[str, set[int]] = {}

    def exists(self, folder: str, shard: int) -> bool:
        if folder not in self._seen:
            self._seen[folder] = set(list_shards(self.out, folder))
        return shard in self._seen[folder]


def plan_stage(stage: Stage, out: Output, shards: list[int], report: StageReport | None = None) -> list[ShardTask]:
    """The shards of ``shards`` that must be (re)done, skipping complete ones with matching hashes.

    On an object store the markers come from the stage's index (``regionset.pipelines.core.marker_index``): one
    listing per folder and one index GET, not a GET per shard.
    """
    out = Output.of(out)
    if getattr(stage, "parts", None):
        return _plan_parts(stage, out, shards, report)
    cfg = stage.config_hash(out)
    listing = Listing(out) if is_remote(out) else None
    index = out.markers(stage.name).committed() if listing is not None else None
    staged = staged_names(out.root, stage.output) if listing is not None else None
    tasks = []
    for shard in shards:
        ih = input_hash(out, stage, shard, listing)
        if ih is None:
            if report is not None:
                report.waiting += 1
                if len(report.waiting_shards) < WAITING_NAMED:
                    report.waiting_shards.append(shard)
            continue
        if index is not None:
            m = index.get(shard)
            present = listing.exists(stage.output, shard)
        else:
            m = read_marker(out, stage.name, shard)
            present = m is not None and shard_path(out, stage.output, shard).exists()
        if m is not None and m.config_hash == cfg and m.input_hash == ih and m.object:
            settle(out.root, m, stage.output, staged)  # a commit stopped before its copy: finish it
            present = present or shard_path(out, stage.output, shard).exists()
        done = m is not None and m.config_hash == cfg and m.input_hash == ih and present
        if done:
            if report is not None:
                report.skipped += 1
            continue
        tasks.append(ShardTask(shard, cfg, ih, stale_marker=m is not None))
    return tasks


def _part_done(part: Stage, out: Output, shard: int, cfg: str, listing: Listing | None,
               index: MarkerIndex | None, staged: set[str] | None) -> bool:
    """Whether ``part`` of a fused stage has a complete shard (marker, output, matching hashes); on an
    object store from the listing and the part's marker index, as ``plan_stage`` decides. A commit
    stopped between its marker and the copy is finished here (roll forward)."""
    ih = input_hash(out, part, shard, listing)
    if index is not None and listing is not None:
        m, present = index.get(shard), listing.exists(part.output, shard)
    else:
        m = read_marker(out, part.name, shard)
        present = m is not None and shard_path(out, part.output, shard).exists()
    matches = ih is not None and m is not None and m.config_hash == cfg and m.input_hash == ih
    if matches and m.object:
        settle(out.root, m, part.output, staged)
        present = present or shard_path(out, part.output, shard).exists()
    return matches and present


def _plan_parts(stage: Stage, out: Output, shards: list[int], report: StageReport | None) -> list[ShardTask]:
    """A fused stage (``stage.parts``, e.g. ``regions``): a shard is done when every part's is."""
    cfg = stage.config_hash(out)
    listing = Listing(out) if is_remote(out) else None
    parts = [(p, p.config_hash(out), out.markers(p.name).committed() if listing is not None else None,
              staged_names(out.root, p.output) if listing is not None else None) for p in stage.parts]
    tasks = []
    for shard in shards:
        ih = input_hash(out, stage, shard, listing)
        if ih is None:
            if report is not None:
                report.waiting += 1
        elif all(_part_done(p, out, shard, pcfg, listing, index, staged) for p, pcfg, index, staged in parts):
            if report is not None:
                report.skipped += 1
        else:
            tasks.append(ShardTask(shard, cfg, ih, stale_marker=True))
    return tasks


def _run_parts(stage: Stage, out: Output, task: ShardTask) -> Marker:
    """Do one shard of a fused stage: every part's table and marker, in order; the last marker."""
    stage.ensure_setup()
    tables = {folder: read_table(shard_path(out, folder, task.shard), folder) for folder in stage.inputs}
    for folder in stage.optional_inputs:
        if shard_path(out, folder, task.shard).exists():
            tables[folder] = read_table(shard_path(out, folder, task.shard), folder)
    results = stage.run_parts(tables)
    failpoint(f"mid_shard:{stage.name}")
    marker = None
    for r in results:  # input hashes after the parts before it are written (embed reads their tables)
        part_task = ShardTask(task.shard, r.stage.config_hash(out), input_hash(out, r.stage, task.shard) or "",
                              stale_marker=True)
        marker = finish_shard(r.stage, out, part_task, r.rows_in, r.table, r.seconds, r.counters, r.timings,
                              again=lambda: _run_parts(stage, out, task))
    return marker


def save_markers(stage: Stage, out: Output, markers: list[Marker]) -> None:
    """After a stage ran: save its marker index on an object store (``StageMarkers.save``). A fused
    stage saves one index per part: the last part's from ``markers`` (what its shards returned), the
    others' from their markers read once here (one GET per shard written), so that later plans and
    the parts' consumers read indexes, not one marker per shard.

    Args:
        stage: the stage that ran.
        out: the output.
        markers: the markers its shards returned.
    """
    parts = getattr(stage, "parts", None)
    if not parts:
        out.markers(stage.name).save(markers)
        return
    done = sorted({m.shard for m in markers})
    for part in parts:
        own = [m for m in markers if m.stage == part.name]
        if done and not own and is_remote(out):
            index = out.markers(part.name).committed()
            own = [m for s in done if (m := index.get(s)) is not None]
        out.markers(part.name).save(own)  # also what planning read one by one (nothing on local disk)


def read_inputs(stage: Stage, out: Output, shard: int) -> pa.Table:
    """Read the shard's input tables and combine them with the stage's ``prepare``."""
    tables = {folder: read_table(shard_path(out, folder, shard), folder) for folder in stage.inputs}
    for folder in getattr(stage, "optional_inputs", ()):
        if shard_path(out, folder, shard).exists():
            tables[folder] = read_table(shard_path(out, folder, shard), folder)
    return stage.prepare(tables)


def finish_shard(stage: Stage, out: Output, task: ShardTask, rows_in: int, result: pa.Table,
                 seconds: float, counters: dict[str, int], timings: dict[str, int] | None = None,
                 retries_before: dict[str, int] | None = None, again: Callable[[], Marker] | None = None) -> Marker:
    """Validate a shard's output, write it as this attempt's object, commit the marker conditionally
    and put the winning attempt's object in place (``pipelines/core/attempts.py``); return the marker
    that stands (another attempt's when that one won). With ``retries_before``
    (``store_retry.retry_counts()`` when the shard started), the object-store retries since then go
    into the marker's ``timings`` as ``store_retry:<reason>``. ``again`` runs the whole shard once
    more, between this attempt's object and its marker, when the duplicate-attempt test failpoint
    names the stage (``failpoints.duplicate_attempt``)."""
    validate_table(result, stage.output_schema(), stage.output)
    # A stage may ask for smaller row groups (e.g. pack: image bytes, streamed by training readers).
    rows = stage.row_group_rows or ROW_GROUP_ROWS
    root = out.root if isinstance(out, Output) else out
    mine, sha, size = write_attempt(result, root, stage.output, task.shard, rows)
    failpoint(f"shard_written:{stage.name}")
    if again is not None and duplicate_attempt(stage.name) and not getattr(_SECOND, "active", False):
        _SECOND.active = True
        try:
            again()  # the duplicate attempt runs whole (and wins) while this one waits to commit
        finally:
            _SECOND.active = False
    timings = dict(timings or {})
    if getattr(_SECOND, "active", False):
        timings[DUPLICATE_TIMING] = 1  # this is the test failpoint's second attempt (timings: not compared)
    if retries_before is not None:
        timings.update({store_retry.RETRY_PREFIX + k: v for k, v in store_retry.take_since(retries_before).items()})
    marker = Marker(
        stage=stage.name, shard=task.shard, config_hash=task.config_hash, input_hash=task.input_hash,
        output_sha256=sha, rows_in=rows_in, rows_out=result.num_rows, seconds=round(seconds, 4),
        counters=dict(sorted(counters.items())), timings=dict(sorted(timings.items())),
        object=attempt_rel(root, mine), size=size,
    )
    winner = commit_marker(root, marker, stage.output)
    failpoint(f"marker_committed:{stage.name}")
    discard(root, mine, winner)
    promote(root, winner, stage.output)
    return winner


DUPLICATE_TIMING = "failpoint:duplicate_attempt"
"""Timing key of a marker written by the duplicate-attempt test failpoint's second attempt."""

_SECOND = threading.local()  # set while a duplicate attempt (test failpoint) runs in this thread
_SECOND.active = False


def run_shard(stage: Stage, out: Output, task: ShardTask) -> Marker:
    """Do one shard in this process: read, prepare, process, validate, write, mark."""
    if getattr(stage, "parts", None):
        return _run_parts(stage, out, task)
    stage.ensure_setup()
    stage.verify_plan(task.config_hash)  # e.g. assign: the k-means tree this worker loaded is the planned one
    retries_before = store_retry.retry_counts()
    start = time.perf_counter()
    stage.take_counters()  # before prepare: what prepare counts (e.g. skip:duplicate) is this shard's
    stage.take_timings()
    table = read_inputs(stage, out, task.shard)
    result = stage.process(table)
    failpoint(f"mid_shard:{stage.name}")
    counters = stage.take_counters()
    return finish_shard(stage, out, task, table.num_rows, result, time.perf_counter() - start, counters,
                        stage.take_timings(), retries_before, again=lambda: run_shard(stage, out, task))


def check_complete(report: StageReport, tasks: list[ShardTask], markers: list[Marker]) -> None:
    """Raise if a planned shard came back without a marker (a lost or duplicated task)."""
    got = sorted(m.shard for m in markers)
    want = sorted(t.shard for t in tasks)
    if got != want:
        raise RuntimeError(f"stage {report.stage}: expected markers for shards {want}, got {got}")


def check_not_waiting(stage: Stage, report: StageReport, written: dict[str, str]) -> None:
    """Raise ``WaitingError`` if shards of ``stage`` still wait for an input folder that a stage run
    earlier in this build writes: that stage ran over every shard, so the input should be there (a
    worker wrote it where the driver cannot see it, or it was deleted). Waiting for a folder whose
    stage is not part of this build is normal (the summary counts it).

    Args:
        stage: the stage just run.
        report: its report (``waiting`` and the first ``waiting_shards``).
        written: input folder -> name of the stage that wrote it earlier in this build.
    """
    upstream = sorted({written[f] for f in stage.inputs if f in written})
    if not report.waiting or not upstream:
        return
    names = ", ".join(shard_name(s) for s in report.waiting_shards)
    more = f" and {report.waiting - len(report.waiting_shards)} more" if report.waiting > len(report.waiting_shards) else ""
    raise WaitingError(f"stage {stage.name}: {report.waiting} shards still waiting for their input after "
                       f"{', '.join(upstream)} ran in this build ({names}{more}): is the output folder the same "
                       f"for the driver and every worker?")
