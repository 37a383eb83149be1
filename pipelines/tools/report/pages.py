"""HTML of the report: one self-contained page per section, every value escaped.

Pages link to each other and to their image files by relative paths only, carry their CSS inline,
and load no script or font from anywhere, so the folder opens from disk (or an archive) as is.
Every page ends with the SQL it ran, ready to paste into ``regionset sql OUT "..."``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from regionset.pipelines.tools.report.sql import Result

PAGES = (("index.html", "Overview"), ("distributions.html", "Distributions"),
         ("clusters.html", "Cluster gallery"), ("images.html", "Images"), ("curation.html", "Curation"),
         ("run.html", "Run"))
NO_DATA = "no data yet"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header{background:#1d232b;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#cfd8e3;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .brand{font-weight:700;margin-right:12px}
main{padding:16px 24px;max-width:1280px}
h2{margin-top:28px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;background:#fff}
td,th{border:1px solid #d8dde3;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4d6;border:2px solid #e0a000;padding:8px 14px;margin:12px 0;border-radius:4px}
.warn h2{border:0;margin:4px 0}
.nodata{color:#7a8694;font-style:italic}
pre{background:#fff;border:1px solid #d8dde3;padding:8px;overflow:auto;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;color:#44556a}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.cell{background:#fff;border:1px solid #d8dde3;padding:4px;width:136px;font-size:11px;overflow-wrap:anywhere}
.cell img{display:block;margin:auto;max-width:128px;max-height:128px}
.cluster{margin:18px 0}.path{font-family:monospace}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{background:#fff;border:1px solid #d8dde3;padding:6px}
.obj{color:#b86a00;font-weight:600}.txt{color:#1f65b4;font-weight:600}
.legend span{display:inline-block;width:14px;height:10px;margin:0 4px 0 10px}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value (None becomes an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A cell value: integers with thousands separators, floats to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return esc("/".join(str(v) for v in value))
    return esc(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], attrs: Sequence[str] | None = None) -> str:
    """A ``<table>``; ``attrs[i]`` (if given) is put verbatim on the last cell of row ``i``.

    Args:
        columns: header names.
        rows: the cells.
        attrs: optional pre-escaped attributes for each row's last cell (e.g. ``data-count``).
    """
    rows = list(rows)
    if not rows:
        return f'<p class="nodata">{NO_DATA}</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            num = isinstance(v, int | float) and not isinstance(v, bool)
            extra = f" {attrs[i]}" if attrs and j == len(row) - 1 else ""
            cells.append(f'<td{" class=n" if num else ""}{extra}>{fmt(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def result_table(res: Result) -> str:
    """A query result as a table (or "no data yet")."""
    return table(res.columns, res.rows)


def figure(png: str | None, title: str) -> str:
    """A plot image with a link to its SVG, or the no-data note under the title."""
    if png is None:
        return f'<div class="plot"><b>{esc(title)}</b><p class="nodata">{NO_DATA}</p></div>'
    svg = png[:-4] + ".svg"
    return (f'<div class="plot"><img src="plots/{esc(png)}" alt="{esc(title)}" width="560" height="315">'
            f'<br><a href="plots/{esc(svg)}">SVG</a></div>')


def sql_section(results: Sequence[Result]) -> str:
    """The SQL behind a page, one collapsible block per query."""
    parts = ['<h2 id="sql">SQL behind this page</h2>',
             "<p>Run any of these with <code>regionset sql OUT \"...\"</code> or in "
             "<code>duckdb OUT/catalog.duckdb</code>.</p>"]
    for r in results:
        parts.append(f"<details><summary>{esc(r.title)} ({len(r.rows):,} rows, {r.seconds:.2f} s)</summary>"
                     f"<pre>{esc(r.sql)}</pre></details>")
    return "\n".join(parts)


def warnings_box(warnings: Sequence[str], link: bool = False) -> str:
    """The prominent warnings banner (empty string when there are none)."""
    if not warnings:
        return ""
    if link:
        return f'<div class="warn"><b>{len(warnings)} warning(s)</b> — see <a href="index.html#warnings">overview</a></div>'
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return f'<div class="warn" id="warnings"><h2>Warnings ({len(warnings)})</h2><ul>{items}</ul></div>'


def page(file: str, title: str, body: str, results: Sequence[Result], warnings: Sequence[str], out: str) -> str:
    """A whole HTML document: header with navigation, warnings, body, SQL.

    Args:
        file: this page's file name (to mark it in the navigation).
        title: page title.
        body: pre-rendered HTML of the page's content.
        results: the queries the page ran, shown at the end.
        warnings: run warnings (full on the overview, a link elsewhere).
        out: the output folder shown in the header.
    """
    nav = "".join(f'<a href="{f}"{" class=on" if f == file else ""}>{esc(t)}</a>' for f, t in PAGES)
    banner = warnings_box(warnings, link=file != "index.html")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)} · regionset report</title><style>{CSS}</style></head>\n"
            f'<body><header><span class="brand">regionset report</span>{nav}'
            f'<span style="margin-left:auto;color:#9aa7b5">{esc(out)}</span></header>\n'
            f"<main><h1>{esc(title)}</h1>{banner}\n{body}\n{sql_section(results)}</main></body></html>\n")
