"""Progress bars (one per stage, with rows/s, shards/min and an ETA; a ``build`` line with the whole
build's done/total and ETA, global steps included) and summary tables, drawn with rich. The rates
and ETAs: ``core/eta.py``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from regionset.pipelines.core.eta import (
    BuildWork,
    GlobalEta,
    StageEta,
    StepCost,
    build_eta,
    extrapolate,
    format_eta,
    global_eta,
    stage_eta,
)

console = Console(stderr=True)
out_console = Console()


class BuildTally:
    """The whole build's progress, for the ``build`` line under each stage's bar: every shard stage's
    total, what is done (skipped shards count as done) and when each shard finished, and every global
    step's state and its cost model's expected seconds. An executor watcher (``Executor.watchers``):
    ``planned`` when a stage is planned, ``shard_done`` per marker; ``step_started`` / ``step_done``
    around each global step (the build calls them).

    Args:
        stages: the build's shard stages, in run order.
        shards: shards of the build (every stage has this many to do or skip).
        clock: the clock (``time.perf_counter``; a fake in tests).
        steps: the build's global steps: name -> cost model (None: no model).
        cores: CPU cores of the driver, for the cost models (default: this machine's).
        announce: print a line with the step's expected seconds when a global step starts.
    """

    def __init__(self, stages: list[str], shards: int, clock: Any = time.perf_counter,
                 steps: dict[str, StepCost | None] | None = None, cores: int | None = None,
                 announce: bool = False) -> None:
        self.clock = clock
        self.order = list(stages)
        self.shards = shards
        self.total = dict.fromkeys(self.order, shards)
        self.skipped = dict.fromkeys(self.order, 0)
        self.times: dict[str, list[float]] = {n: [] for n in self.order}
        self.started: dict[str, float] = {}
        self.rows: dict[str, list[int]] = {}  # stage -> [shards done, rows in, rows out]
        self.costs = dict(steps or {})
        self.cores = cores or os.cpu_count() or 1
        self.announce = announce
        self.step_start: dict[str, float] = {}
        self.steps_done: set[str] = set()

    def planned(self, stage: str, todo: int, skipped: int) -> None:
        """``stage`` starts: ``todo`` shards to run, ``skipped`` already complete."""
        if stage not in self.total:
            self.order.append(stage)
            self.times[stage] = []
        self.total[stage] = todo + skipped
        self.skipped[stage] = skipped
        self.started[stage] = self.clock()

    def shard_done(self, marker: Any) -> None:
        """One shard of ``marker.stage`` finished now."""
        self.times.setdefault(marker.stage, []).append(self.clock())
        r = self.rows.setdefault(marker.stage, [0, 0, 0])
        r[0] += 1
        r[1] += getattr(marker, "rows_in", 0)
        r[2] += getattr(marker, "rows_out", 0)

    def work(self) -> BuildWork:
        """The build's images (the first stage's input rows) and embedded regions (``embed`` or the
        fused ``regions`` output rows), extrapolated from the shards done in this run."""
        first = self.rows.get(self.order[0]) if self.order else None
        emb = self.rows.get("embed") or self.rows.get("regions")
        return BuildWork(extrapolate(first[1], first[0], self.shards) if first else None,
                         extrapolate(emb[2], emb[0], self.shards) if emb else None, self.cores)

    def step_started(self, step: str) -> None:
        """Global step ``step`` starts now."""
        self.step_start[step] = self.clock()
        g = next((s for s in self.steps() if s.step == step), None) if self.announce else None
        if g is not None:
            what = f"expected ~{format_eta(g.expected_s)} ({g.source})" if g.expected_s is not None else g.source
            console.print(f"[bold]{step}[/]: {what}; build ETA {self.summary()[2]}", soft_wrap=True)

    def step_done(self, step: str, seconds: float = 0.0) -> None:
        """Global step ``step`` finished (after ``seconds``)."""
        self.steps_done.add(step)

    def steps(self) -> list[GlobalEta]:
        """Every global step's state and seconds left, now."""
        if not self.costs:
            return []
        now, work = self.clock(), self.work()
        return [global_eta(name, cost, work, name in self.steps_done, name in self.step_start,
                           now - self.step_start.get(name, now)) for name, cost in self.costs.items()]

    def stages(self) -> list[StageEta]:
        """Every shard stage's progress and ETA, now."""
        now = self.clock()
        return [_skipped_eta(stage_eta(n, self.times.get(n, []), self.total[n] - self.skipped.get(n, 0), now,
                                       self.started.get(n)), self.skipped.get(n, 0)) for n in self.order]

    def summary(self) -> tuple[int, int, str]:
        """(shard-steps done, in total, the build's ETA as text; ``~`` when a stage not started yet
        is guessed)."""
        done, total, left, guessed = build_eta(self.stages(), self.steps())
        return done, total, f"{'~' if guessed and left else ''}{format_eta(left)}"

    def line(self) -> str:
        """``12/40 shard-steps  ETA 3:10``."""
        done, total, eta = self.summary()
        return f"{done}/{total} shard-steps  ETA {eta}"


def _skipped_eta(e: StageEta, skipped: int) -> StageEta:
    return StageEta(e.stage, e.done + skipped, e.total + skipped, e.rate, e.eta_s)


class StageProgress:
    """A per-stage bar counting shards, showing input rows/s, shards/min over the last minutes and
    the stage's ETA; with a ``tally``, a second line for the whole build.

    Args:
        name: the stage.
        total: shards to run.
        enabled: draw (else only count).
        tally: the build's ``BuildTally``, if any.
    """

    def __init__(self, name: str, total: int, enabled: bool = True, tally: BuildTally | None = None) -> None:
        self.name, self.total, self.enabled = name, total, enabled and total > 0
        self.rows = 0
        self.tally = tally
        self._start = time.perf_counter()
        self._times: list[float] = []

    def __enter__(self) -> StageProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[stage]:<9}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, stage=self.name, detail="shards")
            self._build = self._progress.add_task("", stage="build", detail="") if self.tally is not None else None
            self._update_build()
        return self

    def advance(self, rows: int) -> None:
        """One shard finished with ``rows`` input rows."""
        self.rows += rows
        now = time.perf_counter()
        self._times.append(now)
        if self.enabled:
            rate = self.rows / max(now - self._start, 1e-9)
            e = stage_eta(self.name, self._times, self.total, now, self._start)
            self._progress.update(self._task, advance=1, detail=(
                f"shards  {self.rows} rows  {rate:,.1f} rows/s  {e.rate * 60:,.1f} shards/min  "
                f"ETA {format_eta(e.eta_s)}"))
            self._update_build()

    def _update_build(self) -> None:
        if self.enabled and self.tally is not None and self._build is not None:
            done, total, eta = self.tally.summary()
            self._progress.update(self._build, completed=done, total=total, detail=f"shard-steps  ETA {eta}")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._progress.stop()


class StepProgress:
    """Bars for the phases of a global step (e.g. ``fit_kmeans``: sample, level 0, level 1, refine),
    one bar per phase, created the first time the phase reports. Call it as
    ``progress(phase, done, total, rows)``: ``done`` of ``total`` units, ``rows`` processed so far in
    that phase (shown with rows/s when non-zero)."""

    def __init__(self, step: str, enabled: bool = True) -> None:
        self.step, self.enabled = step, enabled
        self._tasks: dict[str, tuple[Any, float]] = {}
        self._progress: Progress | None = None

    def __enter__(self) -> StepProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]:<18}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rows]}"), TimeElapsedColumn(), console=console, transient=False,
            )
            self._progress.start()
        return self

    def __call__(self, phase: str, done: int, total: int, rows: int = 0) -> None:
        if self._progress is None:
            return
        if phase not in self._tasks:
            task = self._progress.add_task("", total=total, phase=f"{self.step} {phase}", rows="")
            self._tasks[phase] = (task, time.perf_counter())
        task, start = self._tasks[phase]
        text = ""
        if rows:
            text = f"{rows:,} rows  {rows / max(time.perf_counter() - start, 1e-9):,.0f} rows/s"
        self._progress.update(task, completed=done, total=total, rows=text)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], stderr: bool = False) -> None:
    """Print a table with a title."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(str(c))
    for r in rows:
        t.add_row(*[("" if v is None else str(v)) for v in r])
    (console if stderr else out_console).print(t)
