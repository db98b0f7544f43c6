"""Small PNG plots for asset metadata."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: assets run in servers and CI
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import polars as pl


def premium_day_png(premium: pl.DataFrame, title: str) -> bytes:
    """Premium (in %) per coin and venue over the day, both definitions."""
    fig, ax = plt.subplots(figsize=(8.5, 2.8), dpi=80)
    for (coin, venue), part in premium.sort("ts").group_by(["coin", "kr_venue"], maintain_order=True):
        ts = part["ts"].to_list()
        ax.plot(ts, (part["premium_fx"] * 100).to_list(), lw=1, label=f"{coin} {venue} (FX)")
        if part["premium_usdt"].is_not_null().any():
            ax.plot(
                ts, (part["premium_usdt"] * 100).to_list(), lw=0.8, ls="--", label=f"{coin} {venue} (USDT)"
            )
    ax.set_ylabel("premium %")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.set_xlabel("UTC")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def cumulative_returns_png(daily: pl.DataFrame) -> bytes:
    """Compounded daily backtest returns over a range, one line per strategy, scenario and engine
    (returns averaged over coins and venues on each day)."""
    per_day = (
        daily.group_by("date", "strategy", "scenario", "engine")
        .agg(r=pl.col("total_return").mean())
        .sort("date")
    )
    fig, ax = plt.subplots(figsize=(8.5, 3.2), dpi=80)
    for (strategy, scenario, engine), part in per_day.group_by(
        ["strategy", "scenario", "engine"], maintain_order=True
    ):
        curve = ((part["r"] + 1).cum_prod() - 1) * 100
        ax.plot(
            part["date"].to_list(), curve.to_list(), lw=1, marker=".", label=f"{strategy} {scenario} {engine}"
        )
    ax.set_ylabel("compounded return %")
    ax.set_title("backtests over the range", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
