"""A tiny hand-made market for tests: exact, readable values, and a way to inject defects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from kimp.market_data import schemas
from kimp.timeutil import day_start

# KRW close / (USDT close x FX) - 1 with these numbers: BTC upbit 1.02 premium, etc.
FX_RATE = 1300.0
USDT_KRW = 1313.0  # 1% USDT premium
BTC_USDT = 50_000.0
ETH_USDT = 3_000.0


def hourly_candles(venue: str, symbol: str, close: float, day: date, *, hours: int = 24) -> pl.DataFrame:
    base, quote = symbol.split("/")
    start = day_start(day)
    ts = [start + timedelta(hours=h) for h in range(hours)]
    closes = [close * (1 + 0.001 * h) for h in range(hours)]
    return schemas.conform(
        pl.DataFrame(
            {
                "ts": ts,
                "venue": venue,
                "symbol": symbol,
                "base": base,
                "quote": quote,
                "interval_s": 3600,
                "open": closes,
                "high": [c * 1.002 for c in closes],
                "low": [c * 0.998 for c in closes],
                "close": closes,
                "volume": 1.0,
                "quote_volume": None,
            },
            schema_overrides={"quote_volume": pl.Float64, "ts": schemas.UTC_TS},
        ),
        schemas.CANDLES,
        table="candles",
    )


class FakeSource:
    """Deterministic hourly market: Upbit/Bithumb at fixed premiums over Binance, daily FX close."""

    name = "fake"

    def __init__(self, defects: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] | None = None) -> None:
        self.defects = defects or {}

    def provides(self, table: str, venue: str | None = None) -> bool:
        return table in ("candles", "fx")

    def _defect(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        return self.defects[name](frame) if name in self.defects else frame

    def candles(self, venue: str, day: date) -> pl.DataFrame:
        if venue == "binance":
            parts = [
                hourly_candles(venue, "BTC/USDT", BTC_USDT, day),
                hourly_candles(venue, "ETH/USDT", ETH_USDT, day),
            ]
        else:
            prem = 1.02 if venue == "upbit" else 1.03
            parts = [
                hourly_candles(venue, "BTC/KRW", BTC_USDT * FX_RATE * prem, day),
                hourly_candles(venue, "ETH/KRW", ETH_USDT * FX_RATE * prem, day),
            ]
            if venue == "upbit":
                parts.append(hourly_candles(venue, "USDT/KRW", USDT_KRW, day))
        return self._defect(f"{venue}_candles", pl.concat(parts))

    def fx(self, day: date) -> pl.DataFrame:
        start = day_start(day)
        frame = pl.DataFrame(
            {
                "ts": [start],
                "series": ["daily_close"],
                "interval_s": [86400],
                "published_at": [start + timedelta(days=1)],
                "open": [None],
                "high": [None],
                "low": [None],
                "close": [FX_RATE],
                "source": ["fake"],
            },
            schema_overrides={"open": pl.Float64, "high": pl.Float64, "low": pl.Float64},
        )
        return self._defect("fx_usdkrw", schemas.conform(frame, schemas.FX, table="fx"))

    def orderbook(self, day: date) -> pl.DataFrame:
        return schemas.empty(schemas.ORDERBOOK)

    def onchain(self, day: date) -> pl.DataFrame:
        return schemas.empty(schemas.ONCHAIN)

    def macro(self, day: date) -> pl.DataFrame:
        return schemas.empty(schemas.MACRO)

    def news(self, day: date) -> pl.DataFrame:
        return schemas.empty(schemas.NEWS)
