"""Plots (PNG bytes, matplotlib Agg) and a self-contained HTML report of backtest results."""

from __future__ import annotations

import base64
import html
import io
import math
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


def equity_png(result: BacktestResult) -> bytes:
    """Equity curve (KRW) and drawdown (%) one above the other."""
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
    ax1.set_title(f"{result.coin} {result.kr_venue} {result.scenario} ({result.engine})", fontsize=9)
    ax2.fill_between(ts, dd["drawdown"].to_list(), 0, color="tab:red", alpha=0.4, lw=0)
    ax2.set_ylabel("drawdown %")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    _time_axis(ax2)
    return _png(fig)


def premium_trades_png(result: BacktestResult) -> bytes:
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
    ax.set_title(f"{result.coin} {result.kr_venue} premium and trades ({result.scenario})", fontsize=9)
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


def _table(rows: Sequence[tuple[str, object]], head: tuple[str, str] = ("metric", "value")) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def html_report(results: BacktestResult | Sequence[BacktestResult], *, title: str = "kimp backtest") -> str:
    """One self-contained HTML page (PNG embedded as base64): a summary table across results, then per
    result its metrics, cost breakdown, rejections, notes and plots."""
    items = [results] if isinstance(results, BacktestResult) else list(results)
    keys = (
        "total_return",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "turnover",
    )
    head = "".join(f"<th>{k}</th>" for k in ("scenario", "engine", *keys, "cost_total"))
    summary = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(v)}</td>"
            for v in (r.scenario, r.engine, *(r.metrics[k] for k in keys), r.costs["total"])
        )
        + "</tr>"
        for r in items
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:1.5em}}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{summary}</table>",
    ]
    for r in items:
        cfg = r.config
        parts.append(f"<h2>{html.escape(f'{r.coin} {r.kr_venue} - {r.scenario} - {r.engine}')}</h2>")
        parts.append(
            f"<p>mode {cfg.mode}, hedge {cfg.hedge}, fill {cfg.fill}/{cfg.order_type}, capital "
            f"{cfg.capital_krw:,.0f} KRW + {cfg.capital_usdt:,.0f} USDT</p>"
        )
        parts.append(_table(sorted(r.metrics.items())))
        parts.append(_table(list(r.costs.items()), ("cost (KRW)", "amount")))
        if r.rejections:
            rows = [
                (str(x["ts"]), f"{x['reason']}: {x['requested']:.3f} -> {x['allowed']:.3f}")
                for x in r.rejections[:50]
            ]
            parts.append(f"<h3>rejections ({len(r.rejections)})</h3>" + _table(rows, ("ts", "cut")))
        for note in r.notes:
            parts.append(f"<p><em>{html.escape(note)}</em></p>")
        parts.append(_img(equity_png(r), "equity and drawdown"))
        parts.append(_img(premium_trades_png(r), "premium with entries and exits"))
    parts.append("</body></html>")
    return "".join(parts)
