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
    """Compounded daily backtest returns over a range as small multiples: one panel per strategy (rows) and
    scenario (columns), one line per coin and Korean venue (event-driven solid, vectorized dashed)."""
    per_day = (
        daily.group_by("date", "strategy", "scenario", "coin", "kr_venue", "engine")
        .agg(r=pl.col("total_return").mean())
        .sort("date")
    )
    strategies = sorted(per_day["strategy"].unique().to_list())
    scenarios = sorted(per_day["scenario"].unique().to_list())
    fig, axes = plt.subplots(
        len(strategies),
        len(scenarios),
        figsize=(2.9 * len(scenarios) + 0.6, 2.1 * len(strategies) + 0.6),
        dpi=80,
        sharex=True,
        sharey="row",
        squeeze=False,
    )
    markets = sorted({(c, v) for c, v in per_day.select("coin", "kr_venue").iter_rows()})
    colors = dict(zip(markets, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for (strategy, scenario, coin, venue, engine), part in per_day.group_by(
        ["strategy", "scenario", "coin", "kr_venue", "engine"], maintain_order=True
    ):
        ax = axes[strategies.index(strategy)][scenarios.index(scenario)]
        curve = ((part["r"] + 1).cum_prod() - 1) * 100
        ax.plot(
            part["date"].to_list(),
            curve.to_list(),
            lw=1,
            marker=".",
            color=colors.get((coin, venue)),
            ls="-" if engine == "event_driven" else "--",
            label=f"{coin} {venue} {engine}",
        )
    for i, strategy in enumerate(strategies):
        for j, scenario in enumerate(scenarios):
            ax = axes[i][j]
            ax.axhline(0, color="grey", lw=0.5, ls=":")
            ax.grid(alpha=0.3)
            ax.set_title(f"{strategy} · {scenario}", fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("compounded %", fontsize=7)
    n_days = per_day["date"].n_unique()
    for ax in axes[-1]:
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, n_days // 6)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.tick_params(axis="x", labelrotation=45)
    if n_days:
        # Half a day either side of the range (the panels share x). Left to autoscale, a one-day range is a
        # singular limit that matplotlib widens to about four years, and the DayLocator then lays out a tick
        # per day of them: some 1,600 ticks per panel, over 30 s of CPU for the figure.
        first, last = per_day["date"].min(), per_day["date"].max()
        axes[0][0].set_xlim(mdates.date2num(first) - 0.5, mdates.date2num(last) + 0.5)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=6, frameon=False, ncols=min(4, len(handles)))
    fig.suptitle("backtests over the range: compounded daily returns", fontsize=9, x=0.02, ha="left")
    buf = io.BytesIO()
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
