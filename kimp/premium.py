"""The kimchi premium, per bar, coin and Korean venue, with both definitions side by side.

- FX-based:   premium_fx   = KRW close / (Binance USDT close x USD/KRW) - 1
- USDT-based: premium_usdt = KRW close / (Binance USDT close x Upbit USDT/KRW close) - 1

Time of knowledge: a bar (open time ``ts``) is known at its close ``ts + interval_s``; it uses the
latest USD/KRW value *published* at or before that close (an as-of join on ``published_at``), never a
value published later. Bars are matched on open time and interval: for each venue and coin the finest
interval that both the Korean venue and Binance provide is used (any interval, never assumed 1 minute).
Zero-volume bars are placeholders (no trade, stale price, e.g. Bithumb's maintenance stretches): the
premium is null there and ``stale`` is set. Premiums are fractions (0.05 = 5%).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from kimp.errors import MarketDataError
from kimp.market_data.schemas import CANDLES, COINS, FX, KR_VENUES, PREMIUM, empty
from kimp.timeutil import in_day

_BAR_COLS = ["ts", "interval_s", "close", "volume"]
# A bar uses the latest USD/KRW published by its close. Daily FX closes are published at 00:00 UTC of the
# next day and are absent on weekends and holidays, so day D reads FX rows from a week back (the
# ``kimchi_premium`` asset's input window; the streaming engine reads the same one).
FX_LOOKBACK_DAYS = 7


def _bars(candles: pl.DataFrame, base: str, quote: str) -> pl.DataFrame:
    return candles.filter((pl.col("base") == base) & (pl.col("quote") == quote)).select(_BAR_COLS)


def _finest_common_interval(kr: pl.DataFrame, foreign: pl.DataFrame) -> int | None:
    common = set(kr["interval_s"].unique().to_list()) & set(foreign["interval_s"].unique().to_list())
    if common:
        return min(common)
    return min(kr["interval_s"].unique().to_list()) if kr.height else None


def compute_premium(
    kr_candles: dict[str, pl.DataFrame],
    binance_candles: pl.DataFrame,
    fx: pl.DataFrame,
    *,
    day: date,
    source: str = "kimchi_premium",
) -> pl.DataFrame:
    """Premium table for one UTC day. ``fx`` may span earlier days (the look-back for weekends)."""
    if "close" not in fx.columns:  # no USD/KRW partition materialized at all: every premium_fx is null
        fx = empty(FX)
    upbit = kr_candles.get("upbit")
    usdt_all = _bars(upbit, "USDT", "KRW") if upbit is not None else empty({c: CANDLES[c] for c in _BAR_COLS})
    fx_sorted = (
        fx.filter(pl.col("close").is_not_null())
        .select(fx_published_at=pl.col("published_at"), usdkrw=pl.col("close"), _fx_ts=pl.col("ts"))
        .sort(["fx_published_at", "_fx_ts"])
        .unique(subset=["fx_published_at"], keep="last", maintain_order=True)
    )
    parts = []
    for venue in KR_VENUES:
        candles = kr_candles.get(venue)
        if candles is None or candles.height == 0:
            continue
        for coin in COINS:
            kr = _bars(in_day(candles, day), coin, "KRW")
            if kr.height == 0:
                continue
            foreign = _bars(in_day(binance_candles, day), coin, "USDT")
            interval = _finest_common_interval(kr, foreign)
            kr = kr.filter(pl.col("interval_s") == interval)
            joined = (
                kr.rename({"close": "kr_close", "volume": "_kr_vol"})
                .join(
                    foreign.rename({"close": "binance_close", "volume": "_bn_vol"}),
                    on=["ts", "interval_s"],
                    how="left",
                )
                .join(
                    usdt_all.rename({"close": "usdt_krw_close", "volume": "_usdt_vol"}),
                    on=["ts", "interval_s"],
                    how="left",
                )
                .with_columns(coin=pl.lit(coin), kr_venue=pl.lit(venue))
            )
            parts.append(joined)
    if not parts:
        held = ", ".join(
            f"{v}_candles: {0 if f is None else in_day(f, day).height} rows" for v, f in kr_candles.items()
        )
        raise MarketDataError(
            source=source,
            partition=day,
            problem=f"no Korean-venue BTC/ETH candles on this day, so there is no premium to compute ({held}; "
            f"binance_candles: {in_day(binance_candles, day).height} rows)",
            expected="candles for BTC/KRW or ETH/KRW from upbit or bithumb whose open time falls on the day "
            "(check the source's coverage of this date)",
        )
    bars = pl.concat(parts, how="vertical_relaxed").with_columns(
        _close_at=pl.col("ts") + pl.duration(seconds=pl.col("interval_s"))
    )
    bars = bars.sort("_close_at").join_asof(
        fx_sorted, left_on="_close_at", right_on="fx_published_at", strategy="backward"
    )
    stale = (pl.col("_kr_vol") == 0) | (pl.col("_bn_vol").fill_null(1.0) == 0)
    usdt_stale = stale | (pl.col("_usdt_vol").fill_null(1.0) == 0)
    out = bars.with_columns(
        stale=stale,
        premium_fx=pl.when(~stale).then(
            pl.col("kr_close") / (pl.col("binance_close") * pl.col("usdkrw")) - 1.0
        ),
        premium_usdt=pl.when(~usdt_stale).then(
            pl.col("kr_close") / (pl.col("binance_close") * pl.col("usdt_krw_close")) - 1.0
        ),
    )
    return out.select([pl.col(c).cast(t) for c, t in PREMIUM.items()]).sort(["coin", "kr_venue", "ts"])
