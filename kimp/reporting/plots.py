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
