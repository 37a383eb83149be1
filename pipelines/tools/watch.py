"""``regionset status OUT --watch``: a running build's progress, rates and ETA, from its markers.

Works for a build running anywhere that writes into ``OUT`` (another machine, Ray, Spark, Airflow):
it reads only the markers and their ``finished_at``. Each refresh is incremental: a stage's marker
folder is listed again only when its modification time changed (a local folder; an object store
has no folder times and is listed, names only, every refresh) and only markers not seen before are
read, so a refresh at 100,000 shards costs what changed since the last one (BENCHMARKS.md "status
--watch at 100,000 shards").
"""

from __future__ import annotations

import bisect
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import is_remote
from regionset.pipelines.core.eta import StageEta, build_eta, format_eta, stage_eta
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import out_console, print_table
from regionset.pipelines.steps import PIPELINE, SHARD
from regionset.schemas import INPUT

FAILURE_KINDS = ("error",)  # counters that are failures; plus every ``status:*`` other than success


def failures(counters: dict[str, int]) -> int:
    """Rows of a marker that failed: ``error:*`` counters and ``status:*`` other than ``status:success``."""
    return sum(v for k, v in counters.items()
               if k.split(":", 1)[0] in FAILURE_KINDS or (k.startswith("status:") and k != "status:success"))


@dataclass
class Folder:
    """One folder's names, listed again only when it changed (local: its mtime)."""

    path: Any
    mtime: int = -1
    names: set[str] = field(default_factory=set)
    listings: int = 0

    def changed(self) -> set[str]:
        """Names that appeared since the last call."""
        if is_remote(self.path):
            current = {p.name for p in self.path.iterdir()}  # one listing; nothing for a missing prefix
        else:
            try:
                st = os.stat(self.path)
            except OSError:
                return set()
            # a folder written to within the last 2 s is listed again: a change in the same mtime tick
            if st.st_mtime_ns == self.mtime and time.time() - st.st_mtime > 2:
                return set()
            self.mtime = st.st_mtime_ns
            with os.scandir(self.path) as it:
                current = {e.name for e in it}
        self.listings += 1
        new = current - self.names
        self.names |= new
        return new


@dataclass
class StageFeed:
    """What the watcher knows of one stage: when each of its markers finished, their failures."""

    stage: str
    folder: Folder
    times: list[float] = field(default_factory=list)
    fails: list[tuple[float, int]] = field(default_factory=list)
    started: float | None = None
    rows_in: int = 0
    reads: int = 0

    def refresh(self) -> int:
        """Read the markers that appeared since the last refresh; return how many."""
        n = 0
        for name in sorted(self.folder.changed()):
            if not name.endswith(".json") or shard_id(name.replace(".json", ".parquet")) is None:
                continue
            try:
                m = json.loads((self.folder.path / name).read_text())
                t = float(m["finished_at"])
            except (OSError, ValueError, KeyError, TypeError):
                self.folder.names.discard(name)  # torn or vanished: look again next refresh
                continue
            self.reads += 1
            n += 1
            bisect.insort(self.times, t)
            start = t - float(m.get("seconds", 0.0))
            self.started = start if self.started is None else min(self.started, start)
            self.rows_in += int(m.get("rows_in", 0))
            if f := failures(m.get("counters", {})):
                self.fails.append((t, f))
        return n


def shard_stages(out: Output) -> list[str]:
    """The shard stages the build runs, from its ``regionset.yaml`` (every shard stage if unreadable)."""
    kinds = dict(PIPELINE)
    try:
        steps = (yaml.safe_load((out / LINEAGE_FILE).read_text()) or {}).get("config", {}).get("steps")
    except (OSError, yaml.YAMLError):
        steps = None
    names = steps or [n for n, _ in PIPELINE]
    return [n for n in names if kinds.get(n) == SHARD]


class BuildWatch:
    """Incremental progress of the build writing ``out``.

    Args:
        out: the output folder or prefix.
        window_s: the rates' window.
    """

    def __init__(self, out: Output, window_s: float = 300.0) -> None:
        self.out, self.window_s = Output.of(out), window_s
        self.inputs = Folder(self.out / INPUT)
        self.shards: set[int] = set()
        self.feeds = {s: StageFeed(s, Folder(self.out / STATE_DIR / s)) for s in shard_stages(self.out)}

    def refresh(self, now: float | None = None) -> list[StageEta]:
        """Read what changed and return every shard stage's progress and ETA at ``now`` (epoch s)."""
        self.shards |= {i for n in self.inputs.changed() if (i := shard_id(n)) is not None}
        for feed in self.feeds.values():
            feed.refresh()
        now = time.time() if now is None else now
        total = len(self.shards)
        return [stage_eta(s, f.times, max(total, len(f.times)), now, f.started, self.window_s)
                for s, f in self.feeds.items()]

    def recent_failures(self, stage: str, now: float) -> int:
        """Failed rows of ``stage`` in markers finished within the window."""
        return sum(n for t, n in self.feeds[stage].fails if t > now - self.window_s)


def watch_rows(watch: BuildWatch, etas: list[StageEta], now: float) -> list[list[Any]]:
    """The table's rows: per stage, then the whole build."""
    rows = []
    for e in etas:
        f = watch.feeds[e.stage]
        rows.append([e.stage, f"{e.done}/{e.total}", f"{e.rate * 60:,.2f}", format_eta(e.eta_s),
                     sum(n for _, n in f.fails), watch.recent_failures(e.stage, now)])
    done, total, left, guessed = build_eta(etas)
    rows.append(["build", f"{done}/{total}", "", ("~" if guessed and left else "") + format_eta(left), "", ""])
    return rows


def run_watch(out: Output, interval: float = 5.0, count: int = 0, max_seconds: float = 7 * 86400.0) -> list[StageEta]:
    """Refresh and print every ``interval`` seconds until every stage is done, ``count`` refreshes
    (0 = no limit) or ``max_seconds``; return the last progress.

    Args:
        out: the output folder or prefix.
        interval: seconds between refreshes.
        count: refreshes at most (0: until done).
        max_seconds: stop after this long, done or not.
    """
    watch = BuildWatch(out)
    deadline = time.monotonic() + max_seconds
    n = 0
    while True:
        t0 = time.perf_counter()
        now = time.time()
        etas = watch.refresh(now)
        took = time.perf_counter() - t0
        print_table(f"{out} at {time.strftime('%H:%M:%S')}: shards/min over the last "
                    f"{watch.window_s / 60:.0f} min, refresh {took:.2f} s",
                    ["stage", "done/total", "shards/min", "ETA", "failed rows", "failed (window)"],
                    watch_rows(watch, etas, now))
        n += 1
        finished = bool(etas) and all(e.total and e.done >= e.total for e in etas)
        if finished or (count and n >= count) or time.monotonic() + interval > deadline:
            if finished:
                out_console.print("every stage is done")
            return etas
        time.sleep(interval)
