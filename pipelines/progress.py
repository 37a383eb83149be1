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


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], stderr: bool = False) -> None:
    """Print a table with a title."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(str(c))
    for r in rows:
        t.add_row(*[("" if v is None else str(v)) for v in r])
    (console if stderr else out_console).print(t)
