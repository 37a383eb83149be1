"""Rates and ETAs from completion times: the build's progress bars and ``regionset status --watch``.

Pure: every function takes the completion times (epoch or ``perf_counter`` seconds, any one clock)
and ``now``; nothing here reads a clock. A stage's rate is the shards finished in the last
``window_s`` seconds over the time they took (from the window's start, or from the stage's start
when it began inside the window), so it follows a stage that slows down within minutes.

A global step (``group_duplicates``, ``fit_kmeans``, ...) has no shards: its expected seconds come
from its cost model (``GlobalStep.cost``, the same arithmetic as ``regionset estimate``) applied to
the build's work as far as it is known (``BuildWork``: images and regions extrapolated from the
shards done), minus the seconds it has run.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 300.0  # "rate over the last minutes"


def window_rate(times: list[float], now: float, started: float | None = None, window_s: float = WINDOW_S) -> float:
    """Shards per second over the last ``window_s`` seconds.

    Args:
        times: completion times, sorted ascending.
        now: the present, on the same clock.
        started: when the stage started (default: its first completion; then the first shard itself
            is not counted, as its start is unknown).
        window_s: how far back to look.
    """
    if not times:
        return 0.0
    begin = max(now - window_s, started if started is not None else times[0])
    n = len(times) - bisect.bisect_right(times, begin)  # completions after the span's start
    span = now - begin
    return n / span if span > 0 and n > 0 else 0.0


@dataclass(frozen=True)
class StageEta:
    """One stage's progress: ``done`` of ``total`` shards, its rate (shards/s) and seconds left
    (None when no rate is known yet; 0 when done)."""

    stage: str
    done: int
    total: int
    rate: float
    eta_s: float | None

    @property
    def remaining(self) -> int:
        """Shards still to do."""
        return max(self.total - self.done, 0)


def stage_eta(stage: str, times: list[float], total: int, now: float, started: float | None = None,
              window_s: float = WINDOW_S) -> StageEta:
    """The progress and ETA of one stage from its completion times.

    Args:
        stage: its name.
        times: completion times of its shards, sorted.
        total: shards it has to do.
        now: the present.
        started: when it started (default: its first completion).
        window_s: the rate's window.
    """
    done = len(times)
    rate = window_rate(times, now, started, window_s)
    if done >= total:
        return StageEta(stage, done, total, rate, 0.0)
    return StageEta(stage, done, total, rate, (total - done) / rate if rate > 0 else None)


@dataclass(frozen=True)
class BuildWork:
    """The build's work as far as it is known: what a global step's cost model reads.

    ``images``: input rows (None until a shard of the first stage is done); ``regions``: embedded
    regions (None until an ``embed`` / ``regions`` shard is done); both extrapolated from the shards
    done to all shards. ``cores``: CPU cores of the driver, where global steps run.
    """

    images: float | None
    regions: float | None
    cores: int


def extrapolate(rows: int, done: int, shards: int) -> float | None:
    """``rows`` of ``done`` shards scaled to ``shards`` (None when no shard is done yet)."""
    return rows / done * max(shards, done) if done > 0 else None


# A global step's cost model: (expected seconds, where the figure comes from), or None when the work
# it depends on is not known yet or the step has no model.
StepCost = Callable[[BuildWork], "tuple[float, str] | None"]


@dataclass(frozen=True)
class GlobalEta:
    """One global step's progress: ``done``, ``running`` for ``elapsed_s`` seconds, its model's
    ``expected_s`` for the whole step (None: no model or its inputs unknown) and ``source`` (where
    that figure comes from)."""

    step: str
    done: bool
    running: bool
    expected_s: float | None
    elapsed_s: float = 0.0
    source: str = ""

    @property
    def eta_s(self) -> float | None:
        """Seconds left: 0 when done; the model's seconds less those run, never below 0 (a step
        running past its model shows 0 until it finishes); None without a model."""
        if self.done:
            return 0.0
        if self.expected_s is None:
            return None
        return max(self.expected_s - (self.elapsed_s if self.running else 0.0), 0.0)


def global_eta(step: str, cost: StepCost | None, work: BuildWork, done: bool, running: bool,
               elapsed_s: float = 0.0) -> GlobalEta:
    """A global step's progress from its cost model and the build's known work.

    Args:
        step: its name.
        cost: its cost model (None: it has none).
        work: the build's work so far.
        done: it finished (its completion file exists).
        running: it is running now.
        elapsed_s: seconds it has run.
    """
    try:
        got = cost(work) if cost is not None and not done else None
    except Exception as err:  # noqa: BLE001 - a model that cannot run must not stop a build or a watch
        return GlobalEta(step, done, running, None, elapsed_s, f"no model: {type(err).__name__}: {err}")
    expected, source = got if got is not None else (None, "" if done else "no model yet")
    return GlobalEta(step, done, running, expected, elapsed_s, source)


def build_eta(stages: list[StageEta], steps: list[GlobalEta] | tuple[GlobalEta, ...] = ()) \
        -> tuple[int, int, float | None, bool]:
    """The whole build's (done, total, seconds left, guessed) over its shard stages, run one after the
    other: a started stage's remaining at its own rate; a stage not started yet at the mean rate of
    the stages that have one (``guessed`` = True: it may be much slower or faster); plus each global
    step's seconds left by its model (one without a model counts 0 and makes it ``guessed``).
    ``done``/``total`` count shard-steps only.

    Args:
        stages: every shard stage of the build, in run order.
        steps: every global step of the build.
    """
    done = sum(s.done for s in stages)
    total = sum(s.total for s in stages)
    rates = [s.rate for s in stages if s.rate > 0]
    mean = sum(rates) / len(rates) if rates else 0.0
    left, guessed = 0.0, False
    for s in stages:
        if s.remaining == 0:
            continue
        if s.eta_s is not None:
            left += s.eta_s
        elif mean > 0:
            left += s.remaining / mean
            guessed = True
        else:
            return done, total, None, True
    for g in steps:
        if g.eta_s is None:
            guessed = True
        else:
            left += g.eta_s
    return done, total, left, guessed


def format_eta(seconds: float | None) -> str:
    """``1:02:03``, ``4:05``, ``done`` for 0, ``-`` for unknown."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "done"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
