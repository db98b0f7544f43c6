"""Plots (PNG bytes, matplotlib Agg) and a self-contained HTML report of backtest results.

Every heading and row names what it shows: strategy, coin, Korean venue, engine and scenario. Ratios that
annualise (annualised return, volatility, Sharpe, Sortino, Calmar) are labelled with the span of bars they
were extrapolated from: one day's Sharpe of -78 is one day's noise scaled by sqrt(365), not a forecast.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: assets run in servers and CI
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from kimp.backtest.result import BacktestResult

_MAX_POINTS = 4000  # plots of long runs are decimated: a PNG cannot show more points anyway


def _decimate(frame: pl.DataFrame) -> pl.DataFrame:
    step = max(1, frame.height // _MAX_POINTS)
    return frame.gather_every(step) if step > 1 else frame


def _time_axis(ax: plt.Axes) -> None:
    locator = mdates.AutoDateLocator(tz="UTC", maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_xlabel("UTC")


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def equity_png(result: BacktestResult, *, strategy: str | None = None) -> bytes:
    """Equity curve (KRW) and drawdown (%) one above the other, titled with what was run."""
    eq = result.equity.select("ts", "equity")
    capital = float(result.metrics["final_equity"] - result.metrics["pnl"])
    e = eq["equity"].to_numpy()
    peak = np.maximum.accumulate(np.maximum(e, capital))
    dd = _decimate(eq.with_columns(drawdown=pl.Series(-100.0 * (1.0 - e / peak))))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.5, 4.2), dpi=80, sharex=True, height_ratios=(2, 1))
    ts = dd["ts"].to_list()
    ax1.plot(ts, dd["equity"].to_list(), lw=1, color="tab:blue")
    ax1.axhline(capital, color="grey", lw=0.6, ls=":")
    ax1.set_ylabel("equity KRW")
    ax1.set_title(result_label(result, strategy_of(result, strategy)), fontsize=9)
    ax2.fill_between(ts, dd["drawdown"].to_list(), 0, color="tab:red", alpha=0.4, lw=0)
    ax2.set_ylabel("drawdown %")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    _time_axis(ax2)
    return _png(fig)


def premium_trades_png(result: BacktestResult, *, strategy: str | None = None) -> bytes:
    """Premium (%) with entries (triangles) and exits (circles) of the spread position."""
    eq = result.equity.select("ts", "premium", "position")
    pos = eq["position"].to_numpy()
    prev = np.concatenate([[0.0], pos[:-1]])
    entry = (pos != 0) & (np.sign(pos) != np.sign(prev))
    exit_ = (prev != 0) & (np.sign(pos) != np.sign(prev))
    prem = eq["premium"].to_numpy() * 100
    ts = eq["ts"].to_numpy()
    fig, ax = plt.subplots(figsize=(8.5, 2.8), dpi=80)
    small = _decimate(eq)
    ax.plot(small["ts"].to_list(), (small["premium"] * 100).to_list(), lw=0.8, color="grey", label="premium")
    long_e, short_e = entry & (pos > 0), entry & (pos < 0)
    ax.scatter(
        ts[long_e], prem[long_e], marker="^", color="tab:green", s=18, label="enter long premium", zorder=3
    )
    ax.scatter(
        ts[short_e], prem[short_e], marker="v", color="tab:red", s=18, label="enter short premium", zorder=3
    )
    ax.scatter(
        ts[exit_], prem[exit_], marker="o", facecolors="none", edgecolors="k", s=18, label="exit", zorder=3
    )
    ax.set_ylabel("premium %")
    ax.set_title(f"premium and trades: {result_label(result, strategy_of(result, strategy))}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _time_axis(ax)
    return _png(fig)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.6g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return html.escape(str(value))


# Metrics that extrapolate the run's bars to a year (kimp.backtest.metrics).
ANNUALISED = frozenset({"annualized_return", "volatility", "sharpe", "sortino", "calmar"})


def span_text(result: BacktestResult) -> str:
    """How much market a result covers: "1 day", "6 h", "30 days"."""
    market = result.records.market
    seconds = market.n * market.interval_s
    days = seconds / 86_400
    if days >= 1:
        return f"{days:.3g} day" + ("" if round(days, 3) == 1 else "s")
    return f"{seconds / 3600:.3g} h"


def metric_label(key: str, span: str) -> str:
    """``sharpe (annualised from 1 day)`` for the annualising metrics; other keys unchanged."""
    return f"{key} (annualised from {span})" if key in ANNUALISED else key


def strategy_of(result: BacktestResult, given: str | None = None) -> str:
    return given or str(getattr(result, "strategy", None) or "strategy n/a")


def result_label(result: BacktestResult, strategy: str) -> str:
    """``zscore · BTC upbit · event_driven · normal``: strategy, coin and venue, engine, scenario."""
    return f"{strategy} · {result.coin} {result.kr_venue} · {result.engine} · {result.scenario}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def small_multiples_png(results: Sequence[BacktestResult], strategies: Sequence[str]) -> bytes:
    """Return (%) of starting capital over the run for every (strategy, coin, venue): one panel each
    (rows: strategies, columns: coin and venue), one line per engine, same scale along a row."""
    rows = list(dict.fromkeys(strategies))
    cols = list(dict.fromkeys((r.coin, r.kr_venue) for r in results))
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(2.9 * len(cols) + 0.6, 2.1 * len(rows) + 0.5),
        dpi=80,
        sharex=True,
        sharey="row",
        squeeze=False,
    )
    styles = {"event_driven": ("tab:blue", "-"), "vectorized": ("tab:orange", "--")}
    for r, strategy in zip(results, strategies, strict=True):
        ax = axes[rows.index(strategy)][cols.index((r.coin, r.kr_venue))]
        eq = _decimate(r.equity.select("ts", "equity"))
        capital = float(r.metrics["final_equity"] - r.metrics["pnl"])
        color, ls = styles.get(r.engine, ("tab:grey", ":"))
        ret = ((eq["equity"] / capital - 1) * 100).to_list()
        ax.plot(eq["ts"].to_list(), ret, lw=1, color=color, ls=ls, label=r.engine)
    for i, strategy in enumerate(rows):
        for j, (coin, venue) in enumerate(cols):
            ax = axes[i][j]
            ax.axhline(0, color="grey", lw=0.5, ls=":")
            ax.grid(alpha=0.3)
            ax.set_title(f"{strategy} · {coin} {venue}", fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("return %", fontsize=7)
    for ax in axes[-1]:
        locator = mdates.AutoDateLocator(tz="UTC", maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
        ax.set_xlabel("UTC", fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=7, frameon=False, ncols=len(handles))
    scenario = ", ".join(sorted({r.scenario for r in results}))
    fig.suptitle(
        f"return of starting capital per strategy, coin and venue ({scenario})", fontsize=9, x=0.02, ha="left"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


_SUMMARY_KEYS = (
    "total_return",
    "max_drawdown",
    "sharpe",
    "sortino",
    "win_rate",
    "profit_factor",
    "round_trips",
    "turnover",
)


def _table(rows: Sequence[tuple[str, object]], head: tuple[str, str] = ("metric", "value")) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1500px}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:right;white-space:nowrap}td.l,th.l{text-align:left}img{max-width:100%}"
    "nav ol{columns:2}p.note{color:#555;max-width:70em}"
)


def html_report(
    results: BacktestResult | Sequence[BacktestResult],
    *,
    title: str = "kimp backtest",
    strategies: Sequence[str] | None = None,
    index_href: str | None = None,
) -> str:
    """One self-contained HTML page (PNG embedded as base64): contents, a summary table with one row per
    result (strategy, coin, venue, engine, scenario), a small-multiples figure of every strategy, coin and
    venue, then per result its metrics, cost breakdown, rejections, notes and plots.

    ``strategies`` names each result's strategy (results do not carry it); ``index_href`` links back to
    the range index page.
    """
    items = [results] if isinstance(results, BacktestResult) else list(results)
    names = [strategy_of(r, strategies[i] if strategies else None) for i, r in enumerate(items)]
    labels = [result_label(r, n) for r, n in zip(items, names, strict=True)]
    anchors = [_slug(x) for x in labels]
    spans = {span_text(r) for r in items}
    span = spans.pop() if len(spans) == 1 else "each run's bars"
    ident = ("strategy", "coin", "kr_venue", "engine", "scenario")
    head = "".join(f"<th class='l'>{k}</th>" for k in ident) + "".join(
        f"<th>{k}<br><small>annualised from {html.escape(span)}</small></th>"
        if k in ANNUALISED
        else f"<th>{k}</th>"
        for k in (*_SUMMARY_KEYS, "cost_total (KRW)")
    )
    summary = "".join(
        "<tr>"
        + f"<td class='l'><a href='#{a}'>{html.escape(n)}</a></td>"
        + "".join(f"<td class='l'>{_fmt(v)}</td>" for v in (r.coin, r.kr_venue, r.engine, r.scenario))
        + "".join(
            f"<td>{_fmt(v)}</td>"
            for v in (*(r.metrics.get(k, math.nan) for k in _SUMMARY_KEYS), r.costs["total"])
        )
        + "</tr>"
        for r, n, a in zip(items, names, anchors, strict=True)
    )
    toc = "".join(
        f"<li><a href='#{a}'>{html.escape(x)}</a></li>" for x, a in zip(labels, anchors, strict=True)
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><a href='{html.escape(index_href)}'>&larr; all days and scenarios (range index)</a></p>"
        if index_href
        else "",
        "<p class='note'>One row per backtest: a strategy trading one coin on one Korean venue (against "
        "Binance) with one engine under one market scenario. Returns and drawdowns are those of the run; "
        f"ratios marked <em>annualised from {html.escape(span)}</em> scale that span's bar returns to a year "
        "and are very noisy on a single day: compare strategies on the run's own return and drawdown, and "
        "on the range index page over many days.</p>",
        "<nav><h2>Contents</h2><ol><li><a href='#summary'>Summary</a></li>"
        "<li><a href='#overview'>Return per strategy, coin and venue</a></li>"
        f"{toc}</ol></nav>",
        f"<h2 id='summary'>Summary</h2><table><tr>{head}</tr>{summary}</table>",
        f"<h2 id='overview'>Return per strategy, coin and venue</h2>{_img(small_multiples_png(items, names), 'small multiples')}",
    ]
    for r, name, label, anchor in zip(items, names, labels, anchors, strict=True):
        cfg = r.config
        parts.append(f"<h2 id='{anchor}'>{html.escape(label)}</h2>")
        parts.append(
            f"<p>{span_text(r)} of bars; mode {cfg.mode}, hedge {cfg.hedge}, fill {cfg.fill}/{cfg.order_type}, "
            f"capital {cfg.capital_krw:,.0f} KRW + {cfg.capital_usdt:,.0f} USDT</p>"
        )
        parts.append(_table([(metric_label(k, span_text(r)), v) for k, v in sorted(r.metrics.items())]))
        parts.append(_table(list(r.costs.items()), ("cost (KRW)", "amount")))
        if r.rejections:
            rows = [
                (str(x["ts"]), f"{x['reason']}: {x['requested']:.3f} -> {x['allowed']:.3f}")
                for x in r.rejections[:50]
            ]
            parts.append(f"<h3>rejections ({len(r.rejections)})</h3>" + _table(rows, ("ts", "cut")))
        for note in r.notes:
            parts.append(f"<p><em>{html.escape(note)}</em></p>")
        parts.append(_img(equity_png(r, strategy=name), f"equity and drawdown: {label}"))
        parts.append(_img(premium_trades_png(r, strategy=name), f"premium and trades: {label}"))
        parts.append("<p><a href='#summary'>&uarr; summary</a></p>")
    parts.append("</body></html>")
    return "".join(parts)
