"""The range index page, ``<reports>/index.html``: every day and scenario of a backtest range, linked to
its HTML report, with the figures and tables of the whole range.

It is written beside the daily reports (``<reports>/backtest/<day>/<scenario>.html``), links them
relatively, and embeds its figures, so the folder can be copied or served as it is.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import polars as pl

from kimp.reporting.plots import cumulative_returns_png
from kimp.reporting.summaries import backtest_overview, day_returns

INDEX = "index.html"
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1500px}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:right;white-space:nowrap}td.l,th.l{text-align:left}img{max-width:100%}"
    "p.note{color:#555;max-width:70em}"
)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.6g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return html.escape("" if value is None else str(value))


def _table(frame: pl.DataFrame, text_columns: int = 3) -> str:
    head = "".join(
        f"<th class='{'l' if i < text_columns else ''}'>{html.escape(c)}</th>"
        for i, c in enumerate(frame.columns)
    )
    rows = "".join(
        "<tr>"
        + "".join(f"<td class='{'l' if i < text_columns else ''}'>{_cell(v)}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def report_path(root: Path, day: str, scenario: str) -> Path:
    """Where a day's report of one scenario lives (kimp_pipelines' backtest resource writes it there)."""
    return Path(root) / "backtest" / day / f"{scenario}.html"


def index_html(root: Path, daily: pl.DataFrame, *, title: str | None = None) -> str:
    """The page for ``daily`` (backtest_report rows of a range: date, scenario, strategy, coin, kr_venue,
    engine and metrics) whose reports live under ``root``."""
    days = sorted({d.isoformat() for d in daily["date"].unique().to_list()})
    scenarios = sorted(daily["scenario"].unique().to_list())
    first, last = (days[0], days[-1]) if days else ("", "")
    title = title or f"kimp backtests {first}..{last}"
    # One cell per day and scenario: a link to its report and each strategy's return that day (mean over
    # coins, venues and engines, i.e. what the strategy made on equal capital in each market).
    per_day = day_returns(daily)
    cells = []
    for day in days:
        row = [f"<td class='l'>{day}</td>"]
        for scenario in scenarios:
            part = per_day.filter(
                (pl.col("date").cast(pl.String) == day) & (pl.col("scenario") == scenario)
            ).sort("strategy")
            text = "<br>".join(
                f"{html.escape(s)} {r * 100:+.2f}%"
                for s, r in part.select("strategy", "day_return").iter_rows()
            )
            path = report_path(root, day, scenario)
            link = (
                f"<a href='{html.escape(os.path.relpath(path, root))}'>report</a>"
                if path.exists()
                else "<em>no report</em>"
            )
            row.append(f"<td class='l'>{link}<br>{text}</td>")
        cells.append("<tr>" + "".join(row) + "</tr>")
    grid = (
        "<table><tr><th class='l'>day</th>"
        + "".join(f"<th class='l'>{html.escape(s)}</th>" for s in scenarios)
        + "</tr>"
        + "".join(cells)
        + "</table>"
    )
    overview = backtest_overview(daily)
    png = base64.b64encode(cumulative_returns_png(daily)).decode()
    return "".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            "<nav><h2>Contents</h2><ol><li><a href='#days'>Reports by day and scenario</a></li>"
            "<li><a href='#range'>Compounded returns over the range</a></li>"
            "<li><a href='#overview'>Per strategy, scenario and engine</a></li></ol></nav>",
            f"<p class='note'>{len(days)} day(s) x {len(scenarios)} scenario(s), strategies "
            f"{html.escape(', '.join(sorted(daily['strategy'].unique().to_list())))}. Each day starts and ends "
            "flat. A day's return is the mean over its coins, Korean venues and engines; days compound. "
            "Ratios annualised from a single day are left to the daily reports: over the range, read the "
            "compounded return, the spread of daily returns and the worst drawdown.</p>",
            f"<h2 id='days'>Reports by day and scenario</h2>{grid}",
            "<h2 id='range'>Compounded returns over the range</h2>",
            f"<img alt='compounded daily returns' src='data:image/png;base64,{png}'>",
            f"<h2 id='overview'>Per strategy, scenario and engine</h2>{_table(overview)}",
            "</body></html>",
        ]
    )


def write_index(root: Path, daily: pl.DataFrame, *, title: str | None = None) -> Path:
    """Write ``root/index.html`` atomically (a failed write never leaves half a page) and return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / INDEX
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(index_html(root, daily, title=title), encoding="utf-8")
    tmp.replace(target)
    return target
