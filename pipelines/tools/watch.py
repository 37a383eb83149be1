"""``regionset status OUT --watch``: a running build's progress, rates and ETA, from its markers.

Works for a build running anywhere that writes into ``OUT`` (another machine, Ray, Spark, Airflow):
it reads only the markers and their ``finished_at``. Each refresh is incremental: a stage's marker
folder is listed again only when its modification time changed (a local folder; an object store
has no folder times and is listed, names only, every refresh) and only markers not seen before are
read, so a refresh at 100,000 shards costs what changed since the last one (BENCHMARKS.md "status
--watch at 100,000 shards").

Global steps (``group_duplicates``, ``fit_kmeans``, ``semdedup``) are in the ETA too: one is done
when its completion file exists (one stat or HEAD per refresh), running once every shard stage
before it is done (since the last of their markers finished), and its seconds come from its cost
model (``GlobalStep.cost``, from the build's saved config) over the images and regions extrapolated
from the markers read, on this machine's cores.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import is_remote
from regionset.pipelines.core.eta import (
    BuildWork,
    GlobalEta,
    StageEta,
    build_eta,
    extrapolate,
    format_eta,
    global_eta,
    stage_eta,
)
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.outputs import global_outputs
from regionset.pipelines.core.progress import out_console, print_table
from regionset.pipelines.tools.watch_steps import (
    GLOBAL_FOLDERS,
    build_step_names,
    global_row,
    shard_stages,
    step_costs,
)
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
    rows_out: int = 0
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
            self.rows_out += int(m.get("rows_out", 0))
            if f := failures(m.get("counters", {})):
                self.fails.append((t, f))
        return n


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
        self.order = build_step_names(self.out)
        self.feeds = {s: StageFeed(s, Folder(self.out / STATE_DIR / s)) for s in shard_stages(self.out)}
        self.costs = step_costs(self.out)
        self.cores = os.cpu_count() or 1
        commits = global_outputs()
        self.commits = {n: self.out / commits[GLOBAL_FOLDERS[n]] for n in self.costs if n in GLOBAL_FOLDERS}
        self.steps_done: set[str] = set()

    def refresh(self, now: float | None = None) -> list[StageEta]:
        """Read what changed and return every shard stage's progress and ETA at ``now`` (epoch s)."""
        self.shards |= {i for n in self.inputs.changed() if (i := shard_id(n)) is not None}
        for feed in self.feeds.values():
            feed.refresh()
        now = time.time() if now is None else now
        total = len(self.shards)
        return [stage_eta(s, f.times, max(total, len(f.times)), now, f.started, self.window_s)
                for s, f in self.feeds.items()]

    def work(self) -> BuildWork:
        """Images (the first stage's rows in) and embedded regions (``embed`` / ``regions`` rows out),
        extrapolated from the markers read to every input shard."""
        total = len(self.shards)
        first = next(iter(self.feeds.values()), None)
        emb = self.feeds.get("embed") or self.feeds.get("regions")
        return BuildWork(extrapolate(first.rows_in, len(first.times), total) if first else None,
                         extrapolate(emb.rows_out, len(emb.times), total) if emb else None, self.cores)

    def global_etas(self, stages: list[StageEta], now: float) -> list[GlobalEta]:
        """Every global step's state and seconds left at ``now``, after a ``refresh`` gave ``stages``.

        Args:
            stages: the shard stages' progress from ``refresh``.
            now: the present (epoch s).
        """
        complete = {e.stage: e.total > 0 and e.done >= e.total for e in stages}
        work, got, last = self.work(), [], None  # last: when the shard stages before the step finished
        for name in self.order:
            if name in self.feeds:
                times = self.feeds[name].times
                last = times[-1] if times else None
                continue
            if name not in self.costs:
                continue
            if name not in self.steps_done and name in self.commits and self.commits[name].exists():
                self.steps_done.add(name)  # a committed step stays done: no more stat for it
            before = [s for s in self.order[:self.order.index(name)] if s in self.feeds]
            running = all(complete.get(s, False) for s in before) and name not in self.steps_done
            elapsed = max(now - last, 0.0) if running and last is not None else 0.0
            got.append(global_eta(name, self.costs[name], work, name in self.steps_done, running, elapsed))
        return got

    def recent_failures(self, stage: str, now: float) -> int:
        """Failed rows of ``stage`` in markers finished within the window."""
        return sum(n for t, n in self.feeds[stage].fails if t > now - self.window_s)


def watch_rows(watch: BuildWatch, etas: list[StageEta], now: float,
               steps: list[GlobalEta] | None = None) -> list[list[Any]]:
    """The table's rows: per step in run order (shard stages and global steps), then the whole build."""
    steps = watch.global_etas(etas, now) if steps is None else steps
    by_name = {e.stage: e for e in etas} | {g.step: g for g in steps}
    rows = []
    for name in [n for n in watch.order if n in by_name]:
        e = by_name[name]
        if isinstance(e, GlobalEta):
            rows.append(global_row(e))
            continue
        f = watch.feeds[e.stage]
        rows.append([e.stage, f"{e.done}/{e.total}", f"{e.rate * 60:,.2f}", format_eta(e.eta_s),
                     sum(n for _, n in f.fails), watch.recent_failures(e.stage, now)])
    done, total, left, guessed = build_eta(etas, steps)
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
        steps = watch.global_etas(etas, now)
        took = time.perf_counter() - t0
        print_table(f"{out} at {time.strftime('%H:%M:%S')}: shards/min over the last "
                    f"{watch.window_s / 60:.0f} min, refresh {took:.2f} s",
                    ["step", "done/total", "shards/min", "ETA", "failed rows", "failed (window)"],
                    watch_rows(watch, etas, now, steps))
        for g in steps:
            if not g.done:
                out_console.print(f"{g.step}: {g.source}", soft_wrap=True)
        n += 1
        finished = bool(etas) and all(e.total and e.done >= e.total for e in etas) and all(g.done for g in steps)
        if finished or (count and n >= count) or time.monotonic() + interval > deadline:
            if finished:
                out_console.print("every stage is done")
            return etas
        time.sleep(interval)
