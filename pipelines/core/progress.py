"""Progress bars (one per stage, with rows/s) and summary tables, drawn with rich."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
out_console = Console()


class StageProgress:
    """A per-stage bar counting shards, showing input rows/s."""

    def __init__(self, name: str, total: int, enabled: bool = True) -> None:
        self.name, self.total, self.enabled = name, total, enabled and total > 0
        self.rows = 0
        self._start = time.perf_counter()

    def __enter__(self) -> StageProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[stage]:<9}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("shards  {task.fields[rows]} rows  {task.fields[rate]} rows/s"),
                TimeElapsedColumn(), console=console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total, stage=self.name, rows=0, rate="-")
        return self

    def advance(self, rows: int) -> None:
        """One shard finished with ``rows`` input rows."""
        self.rows += rows
        if self.enabled:
            rate = self.rows / max(time.perf_counter() - self._start, 1e-9)
            self._progress.update(self._task, advance=1, rows=self.rows, rate=f"{rate:,.1f}")

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
