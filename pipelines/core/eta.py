"""Rates and ETAs from completion times: the build's progress bars and ``regionset status --watch``.

Pure: every function takes the completion times (epoch or ``perf_counter`` seconds, any one clock)
and ``now``; nothing here reads a clock. A stage's rate is the shards finished in the last
``window_s`` seconds over the time they took (from the window's start, or from the stage's start
when it began inside the window), so it follows a stage that slows down within minutes.
"""

from __future__ import annotations

import bisect
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


def build_eta(stages: list[StageEta]) -> tuple[int, int, float | None, bool]:
    """The whole build's (done, total, seconds left, guessed) over its shard stages, run one after the
    other: a started stage's remaining at its own rate; a stage not started yet at the mean rate of
    the stages that have one (``guessed`` = True: it may be much slower or faster).

    Args:
        stages: every shard stage of the build, in run order.
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
