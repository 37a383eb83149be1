"""Distribution plots of the report: matplotlib (Agg backend), written as PNG and SVG.

Every plot takes bins already aggregated in SQL (``queries.py``), so its cost is independent of
the number of regions. A plot with no data is not drawn: the page says "no data yet" instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator  # noqa: E402

COLORS = {"object": "#e8890c", "text": "#1f77d4"}
_FALLBACK = ["#555555", "#2ca02c", "#9467bd", "#8c564b"]
FIGSIZE = (6.4, 3.6)


def _save(fig: Any, folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=100)
    fig.savefig(folder / f"{name}.svg")
    plt.close(fig)
    return f"{name}.png"


def bars(folder: Path, name: str, x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str,
         title: str, logy: bool = False, width: float = 0.8) -> str | None:
    """A bar chart of pre-binned counts; returns the PNG file name, or None without data.

    Args:
        folder: where the PNG and SVG go.
        name: file stem.
        x: bin positions.
        y: counts per bin.
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: plot title.
        logy: log-scaled counts.
        width: bar width in x units.
    """
    if not x:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.bar([float(v) for v in x], [float(v) for v in y], width=width, color="#4c72b0")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder, name)


def loglog_sizes(folder: Path, name: str, log2_size: Sequence[int], clusters: Sequence[int],
                 title: str) -> str | None:
    """Cluster-size histogram on log-log axes from power-of-two bins.

    Args:
        folder: where the PNG and SVG go.
        name: file stem.
        log2_size: bin ``b`` holds clusters of size ``[2^b, 2^(b+1))``.
        clusters: number of clusters in each bin.
        title: plot title.
    """
    if not log2_size:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    xs = [2.0 ** (b + 0.5) for b in log2_size]
    ax.plot(xs, [float(c) for c in clusters], "o-", color="#4c72b0")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    ax.set(xlabel="cluster size (regions, power-of-two bins)", ylabel="clusters", title=title)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, folder, name)


def by_source(folder: Path, name: str, rows: Sequence[tuple[str, float, int]], xlabel: str, title: str,
              step: float, tick: Callable[[float], str] | None = None) -> str | None:
    """Side-by-side bars per region source (object / text) from ``(source, bin, count)`` rows.

    Args:
        folder: where the PNG and SVG go.
        name: file stem.
        rows: ``(source, bin, count)`` as returned by the SQL.
        xlabel: x-axis label.
        title: plot title.
        step: bin width in x units.
        tick: label of an integer x tick (e.g. ``2**x`` pixels) instead of the number.
    """
    if not rows:
        return None
    series: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for source, b, n in rows:
        series[str(source)].append((float(b), int(n)))
    fig, ax = plt.subplots(figsize=FIGSIZE)
    w = step / max(len(series), 1)
    for i, (source, pts) in enumerate(sorted(series.items())):
        color = COLORS.get(source, _FALLBACK[i % len(_FALLBACK)])
        ax.bar([b + i * w for b, _ in pts], [n for _, n in pts], width=w * 0.95, color=color,
               label=f"{source} ({sum(n for _, n in pts):,})", align="edge")
    ax.set(xlabel=xlabel, ylabel="regions", title=title)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if tick is not None:
        ax.xaxis.set_major_locator(MultipleLocator(1))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: tick(v)))
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder, name)


def lines(folder: Path, name: str, series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, title: str) -> str | None:
    """One line per series (e.g. per stage) over a shared x axis; None without data.

    Args:
        folder: where the PNG and SVG go.
        name: file stem.
        series: label -> (x values, y values).
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: plot title.
    """
    if not any(len(x) for x, _ in series.values()):
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, (x, y) in series.items():
        ax.plot([float(v) for v in x], [float(v) for v in y], "o-", markersize=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, folder, name)
