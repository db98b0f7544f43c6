"""``SimulatedSource``: the deterministic, seeded implementation of the MarketSource protocol."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from kimp.market_data import schemas
from kimp.market_data.simulated.anchors import anchor_path
from kimp.market_data.simulated.intraday import KNOWN_MARKETS, DayPath, anchor_prices, simulate_day
from kimp.market_data.simulated.macro import macro_frame
from kimp.market_data.simulated.news import news_frame
from kimp.market_data.simulated.onchain import onchain_frame
from kimp.market_data.simulated.orderbook import book_frame
from kimp.market_data.simulated.params import REGIME_NAMES, SimParams
from kimp.market_data.simulated.timegrid import DAY_MS, MINUTES, day_index
from kimp.market_data.source import ORDERBOOK_INTERVAL_MS
from kimp.timeutil import day_start

_US_PER_MIN = 60_000_000


def _day_start_us(day: date) -> int:
    return int(day_start(day).timestamp()) * 1_000_000


def _minute_ts(day: date) -> pl.Series:
    us = _day_start_us(day) + np.arange(MINUTES, dtype=np.int64) * _US_PER_MIN
    return pl.Series("ts", us, dtype=pl.Int64).cast(schemas.UTC_TS)


def clear_caches() -> None:
    """Drop the cached anchor paths and day simulations (to free memory, or to prove in tests that
    output does not depend on what was generated before)."""
    anchor_path.cache_clear()
    anchor_prices.cache_clear()
    simulate_day.cache_clear()


class SimulatedSource:
    """A simulated kimchi-premium market: any UTC day between ``params.origin`` and ``params.horizon``.

    Same seed and params give identical frames, whatever the order in which days are requested;
    consecutive days join exactly (last close of D == first open of D+1). Ground truth (regimes, the
    exact premium) is available from :meth:`anchor_frame`.
    """

    name = "simulated"

    def __init__(
        self,
        seed: int = 7,
        orderbook_interval_ms: int = ORDERBOOK_INTERVAL_MS,
        params: SimParams | None = None,
    ) -> None:
        if orderbook_interval_ms <= 0 or DAY_MS % orderbook_interval_ms:
            raise ValueError(
                f"orderbook_interval_ms must be a positive divisor of {DAY_MS} (a day in ms), "
                f"got {orderbook_interval_ms}"
            )
        self.seed = int(seed)
        self.orderbook_interval_ms = int(orderbook_interval_ms)
        self.params = params if params is not None else SimParams()
        unknown = [
            (m.venue, m.symbol) for m in self.params.markets if (m.venue, m.symbol) not in KNOWN_MARKETS
        ]
        if unknown:
            raise ValueError(f"SimParams.markets has markets the simulator cannot price: {unknown}")

    def __repr__(self) -> str:
        return f"SimulatedSource(seed={self.seed}, orderbook_interval_ms={self.orderbook_interval_ms})"

    # ------------------------------------------------------------------ protocol
    def provides(self, table: str, venue: str | None = None) -> bool:
        if table not in schemas.TABLES:
            return False
        return venue is None or venue in schemas.VENUES

    def candles(self, venue: str, day: date) -> pl.DataFrame:
        if venue not in schemas.VENUES:
            raise ValueError(f"unknown venue {venue!r}; the simulated source has {schemas.VENUES}")
        path = self._day(day)
        ts = _minute_ts(day)
        frames = []
        for spec in sorted((m for m in self.params.markets if m.venue == venue), key=lambda m: m.symbol):
            b = path.bars[f"{spec.venue} {spec.symbol}"]
            frames.append(
                pl.DataFrame(
                    {
                        "ts": ts,
                        "venue": pl.repeat(spec.venue, MINUTES, eager=True, dtype=pl.String),
                        "symbol": pl.repeat(spec.symbol, MINUTES, eager=True, dtype=pl.String),
                        "base": pl.repeat(spec.base, MINUTES, eager=True, dtype=pl.String),
                        "quote": pl.repeat(spec.quote, MINUTES, eager=True, dtype=pl.String),
                        "interval_s": pl.repeat(60, MINUTES, eager=True, dtype=pl.Int32),
                        "open": b.open,
                        "high": b.high,
                        "low": b.low,
                        "close": b.close,
                        "volume": b.volume,
                        "quote_volume": b.quote_volume,
                    }
                )
            )
        if not frames:
            return schemas.empty(schemas.CANDLES)
        return schemas.conform(pl.concat(frames), schemas.CANDLES, table="candles")

    def fx(self, day: date) -> pl.DataFrame:
        path = self._day(day)
        b = path.bars["fx"]
        ts = _minute_ts(day)
        intraday = pl.DataFrame(
            {
                "ts": ts,
                "series": pl.repeat("intraday", MINUTES, eager=True, dtype=pl.String),
                "interval_s": pl.repeat(60, MINUTES, eager=True, dtype=pl.Int32),
                "published_at": ts.dt.offset_by("1m"),
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "source": pl.repeat("simulated", MINUTES, eager=True, dtype=pl.String),
            }
        )
        frames = []
        if day.weekday() < 5:
            # Seoul closing rate: the path's value at 15:30 KST = 06:30 UTC, known from then on.
            start = _day_start_us(day)
            frames.append(
                pl.DataFrame(
                    {
                        "ts": pl.Series([start], dtype=pl.Int64).cast(schemas.UTC_TS),
                        "series": ["fixing"],
                        "interval_s": pl.Series([86_400], dtype=pl.Int32),
                        "published_at": pl.Series([start + 390 * _US_PER_MIN], dtype=pl.Int64).cast(
                            schemas.UTC_TS
                        ),
                        "open": pl.Series([None], dtype=pl.Float64),
                        "high": pl.Series([None], dtype=pl.Float64),
                        "low": pl.Series([None], dtype=pl.Float64),
                        "close": [float(path.prices["fx"][390])],
                        "source": ["simulated"],
                    }
                )
            )
        frames.append(intraday)
        return schemas.conform(pl.concat(frames), schemas.FX, table="fx")

    def orderbook(self, day: date, *, venue: str | None = None, symbol: str | None = None) -> pl.DataFrame:
        """L10 snapshots every ``orderbook_interval_ms`` for every market (or only those matching
        ``venue``/``symbol``), sorted by (venue, symbol, ts)."""
        path = self._day(day)
        start = _day_start_us(day)
        # Built market by market in (venue, symbol) order, each in time order: already sorted.
        markets = sorted(enumerate(self.params.markets), key=lambda km: (km[1].venue, km[1].symbol))
        frames = [
            book_frame(path, spec, k, self.orderbook_interval_ms, self.seed, self.params, start)
            for k, spec in markets
            if (venue is None or spec.venue == venue) and (symbol is None or spec.symbol == symbol)
        ]
        if not frames:
            return schemas.empty(schemas.ORDERBOOK)
        frame = pl.concat(frames)
        return schemas.conform(frame, schemas.ORDERBOOK, table="orderbook")

    def onchain(self, day: date) -> pl.DataFrame:
        frame = onchain_frame(self._day(day), self.seed, self.params, _day_start_us(day))
        return schemas.conform(frame.sort(["coin", "ts"]), schemas.ONCHAIN, table="onchain")

    def macro(self, day: date) -> pl.DataFrame:
        frame = macro_frame(self.seed, self.params, day_index(day, self.params), day)
        return schemas.conform(frame.sort(["series", "ts"]), schemas.MACRO, table="macro")

    def news(self, day: date) -> pl.DataFrame:
        frame = news_frame(self._day(day), self.seed, self.params, _day_start_us(day))
        return schemas.conform(
            frame.sort(["ts", "source", "headline"], maintain_order=True), schemas.NEWS, table="news"
        )

    # ------------------------------------------------------------------ ground truth
    def anchor_frame(self, start: date | None = None, end: date | None = None) -> pl.DataFrame:
        """Daily ground truth at 00:00 UTC of each day in [start, end] (default: the whole range):
        regime of the day, prices, USD/KRW and the exact premiums. For tests, calibration and plots;
        not a market-data table (regimes are never observable in real data)."""
        p = self.params
        a = anchor_path(self.seed, p)
        lo = day_index(start or p.origin, p)
        hi = day_index(end or p.horizon, p) + 1
        sl = slice(lo, hi)
        return pl.DataFrame(
            {
                "day": pl.date_range(p.origin, p.horizon, "1d", eager=True)[lo:hi],
                "regime": pl.Series([REGIME_NAMES[r] for r in a.regime[sl]], dtype=pl.String),
                "btc_usdt": np.exp(a.x_btc[sl]),
                "eth_usdt": np.exp(a.x_eth[sl]),
                "usdkrw": np.exp(a.f[sl]),
                "premium_btc": a.premium[sl],
                "premium_eth": a.premium[sl] + (a.eth_spread[sl] + a.eth_fast[sl]),
                "usdt_premium": p.usdt_premium_beta * a.premium[sl] + a.usdt_resid[sl],
                "flow": a.flow[sl],
                "btc_daily_vol": np.sqrt(a.btc_day_var[sl]),
            }
        )

    def _day(self, day: date) -> DayPath:
        return simulate_day(self.seed, self.params, day_index(day, self.params))
