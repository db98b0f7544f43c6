"""The market a backtest sees: one coin on one Korean venue against Binance, as aligned NumPy arrays.

:func:`market_from_tables` turns the project's tables (PREMIUM, CANDLES, ORDERBOOK) into a
:class:`Market` and refuses bad input with a :class:`~kimp.errors.MarketDataError` that names the rows:
non-monotonic or duplicated time, NaN prices or conversion rates, and gaps longer than
``config.max_gap_bars``. Shorter gaps are filled with the last price and marked not tradable (the
engines mark equity there but never trade at a price nobody quoted).

Time: ``ts`` is the bar OPEN time; a bar is known at ``ts + interval_s`` and every decision is taken
there. The conversion rate (KRW per USD or USDT) of a bar is the latest update published at or before
the bar's close, the same as-of rule the premium table uses; it is kept as an update stream too
(``fx_ts``/``fx_rate``), which the event-driven engine replays as FX events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from kimp.backtest.config import BacktestConfig
from kimp.errors import MarketDataError
from kimp.market_data.schemas import BOOK_LEVELS

US = 1_000_000
DAY_US = 86_400 * US
SOURCE = "backtest"


@dataclass(frozen=True, eq=False)
class Book:
    """L10 snapshots of one symbol: ``ts`` (µs, snapshot instant) and (m, 10) price/size arrays."""

    ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    @staticmethod
    def empty() -> Book:
        z = np.zeros((0, BOOK_LEVELS))
        return Book(np.zeros(0, dtype=np.int64), z, z, z, z)


@dataclass(frozen=True, eq=False)
class Market:
    """Aligned per-bar arrays (length n) plus optional books and the FX update stream."""

    coin: str
    kr_venue: str
    interval_s: int
    premium_column: str
    ts: np.ndarray  # int64 µs, bar open
    premium: np.ndarray  # fraction, NaN where unknown (stale or filled bars)
    kr_close: np.ndarray  # KRW
    bn_close: np.ndarray  # USDT
    conv: np.ndarray  # KRW per USD (premium_fx) or per USDT (premium_usdt), as of the bar close
    kr_volume: np.ndarray  # coins traded in the bar on the Korean venue (NaN: unknown)
    bn_volume: np.ndarray
    tradable: np.ndarray  # bool: a real, non-stale bar with a premium
    fx_ts: np.ndarray  # int64 µs publication instants of the conversion rate
    fx_rate: np.ndarray
    kr_book: Book | None = None
    bn_book: Book | None = None
    scenario: str = "normal"

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    @property
    def ts_close(self) -> np.ndarray:
        return self.ts + self.interval_s * US

    @property
    def day_end(self) -> np.ndarray:
        """True at the last bar of each UTC day (by open time, the partition rule)."""
        day = self.ts // DAY_US
        out = np.ones(self.n, dtype=np.bool_)
        out[:-1] = day[:-1] != day[1:]
        return out

    @property
    def partition(self) -> str:
        if self.n == 0:
            return "empty"
        first, last = (datetime.fromtimestamp(int(x) / US, tz=UTC).date() for x in (self.ts[0], self.ts[-1]))
        return str(first) if first == last else f"{first}..{last}"

    @property
    def periods_per_year(self) -> float:
        return 365.0 * 86_400 / self.interval_s

    def replace(self, **changes: object) -> Market:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def ts_series(self, name: str = "ts") -> pl.Series:
        return pl.Series(name, self.ts).cast(pl.Datetime("us", "UTC"))


def _us(col: str) -> pl.Expr:
    return pl.col(col).dt.cast_time_unit("us").dt.replace_time_zone("UTC").cast(pl.Int64)


def _fail(problem: str, expected: str, partition: str, rows: pl.DataFrame | None = None) -> MarketDataError:
    return MarketDataError(source=SOURCE, partition=partition, problem=problem, expected=expected, rows=rows)


def _partition_of(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "empty"
    lo, hi = frame["ts"].min(), frame["ts"].max()
    lo_d, hi_d = lo.date(), hi.date()  # type: ignore[union-attr]
    return str(lo_d) if lo_d == hi_d else f"{lo_d}..{hi_d}"


def _book(orderbook: pl.DataFrame, venue: str, symbol: str, partition: str) -> Book | None:
    if orderbook.height == 0:
        return None
    part = orderbook.filter((pl.col("venue") == venue) & (pl.col("symbol") == symbol))
    if part.height == 0:
        return None
    ts = part.select(_us("ts")).to_series().to_numpy()
    if np.any(np.diff(ts) < 0):
        bad = np.flatnonzero(np.diff(ts) < 0)[:10]
        raise _fail(
            f"order-book snapshots of {venue} {symbol} are not in time order",
            "snapshots sorted by ts",
            partition,
            part[np.concatenate([bad, bad + 1]).tolist()].select("ts", "venue", "symbol"),
        )

    def grid(side: str, what: str) -> np.ndarray:
        cols = [f"{side}_{what}_{i}" for i in range(1, BOOK_LEVELS + 1)]
        return np.ascontiguousarray(part.select(cols).to_numpy().astype(np.float64))

    return Book(ts, grid("bid", "px"), grid("bid", "sz"), grid("ask", "px"), grid("ask", "sz"))


def market_from_tables(
    premium: pl.DataFrame,
    candles: pl.DataFrame,
    orderbook: pl.DataFrame,
    *,
    coin: str = "BTC",
    kr_venue: str = "upbit",
    config: BacktestConfig | None = None,
) -> Market:
    """Build and validate the market of one coin and Korean venue (see the module docstring)."""
    cfg = config or BacktestConfig()
    rows = premium.filter((pl.col("coin") == coin) & (pl.col("kr_venue") == kr_venue))
    partition = _partition_of(premium)
    if rows.height == 0:
        raise _fail(
            f"the premium table has no rows for {coin} on {kr_venue} ({premium.height} rows in all)",
            "PREMIUM rows (kimp.market_data.schemas.PREMIUM) for the requested coin and kr_venue",
            partition,
        )
    intervals = rows["interval_s"].unique().to_list()
    if len(intervals) != 1:
        raise _fail(f"mixed bar intervals {sorted(intervals)}", "one interval_s per market", partition)
    interval = int(intervals[0])
    step = interval * US
    ts = rows.select(_us("ts")).to_series().to_numpy()
    diffs = np.diff(ts)
    if np.any(diffs <= 0):
        bad = np.flatnonzero(diffs <= 0)
        raise _fail(
            f"time is not strictly increasing at {bad.size} places (unsorted or duplicated bars)",
            "premium rows sorted by ts with one row per bar",
            partition,
            rows[np.unique(np.concatenate([bad, bad + 1])).tolist()].select(
                "ts", "coin", "kr_venue", "kr_close"
            ),
        )
    conv_col = cfg.conversion_column
    nan_price = rows.filter(
        pl.col("kr_close").is_null()
        | pl.col("kr_close").is_nan()
        | pl.col("binance_close").is_null()
        | pl.col("binance_close").is_nan()
        | (pl.col("kr_close") <= 0)
        | (pl.col("binance_close") <= 0)
    )
    if nan_price.height:
        raise _fail(
            f"{nan_price.height} bars have a missing, NaN or non-positive price",
            "kr_close and binance_close present and positive on every bar (prices are never guessed)",
            partition,
            nan_price.select("ts", "coin", "kr_venue", "kr_close", "binance_close"),
        )
    too_long = np.flatnonzero(diffs > step * (cfg.max_gap_bars + 1))
    if too_long.size:
        gaps = pl.DataFrame(
            {
                "after": rows["ts"].gather(too_long.tolist()),
                "next": rows["ts"].gather((too_long + 1).tolist()),
                "missing_bars": (diffs[too_long] // step - 1).tolist(),
            }
        )
        raise _fail(
            f"{too_long.size} gaps are longer than max_gap_bars={cfg.max_gap_bars} bars of {interval} s",
            "no gap longer than config.max_gap_bars (prices are not forward-filled across longer gaps)",
            partition,
            gaps,
        )

    # Regular grid: short gaps become filled, non-tradable bars.
    grid_ts = np.arange(ts[0], ts[-1] + 1, step, dtype=np.int64)
    present = np.zeros(grid_ts.size, dtype=np.bool_)
    pos = ((ts - ts[0]) // step).astype(np.int64)
    present[pos] = True

    def on_grid(values: np.ndarray, fill: bool) -> np.ndarray:
        out = np.full(grid_ts.size, np.nan)
        out[pos] = values
        if fill and pos.size != grid_ts.size:
            idx = np.where(present, np.arange(grid_ts.size), 0)
            np.maximum.accumulate(idx, out=idx)
            out = out[idx]
        return out

    def col(name: str) -> np.ndarray:
        return rows[name].cast(pl.Float64).fill_null(np.nan).to_numpy().copy()

    stale = rows["stale"].fill_null(True).to_numpy()
    prem = col(cfg.premium_column)
    prem[stale] = np.nan
    kr_close = on_grid(col("kr_close"), True)
    bn_close = on_grid(col("binance_close"), True)
    premium_arr = on_grid(prem, False)

    # Conversion-rate update stream, and each bar's rate as of its close.
    if cfg.premium_column == "premium_fx":
        fx = (
            rows.filter(pl.col("usdkrw").is_not_null() & pl.col("fx_published_at").is_not_null())
            .select(_us("fx_published_at").alias("t"), pl.col("usdkrw").alias("rate"))
            .unique(subset="t", keep="last")
            .sort("t")
        )
    else:
        fx = (
            rows.filter(pl.col("usdt_krw_close").is_not_null())
            .select((_us("ts") + step).alias("t"), pl.col("usdt_krw_close").alias("rate"))
            .sort("t")
        )
    fx_ts = fx["t"].to_numpy().astype(np.int64)
    fx_rate = fx["rate"].to_numpy().astype(np.float64)
    close_ts = grid_ts + step
    at = np.searchsorted(fx_ts, close_ts, side="right") - 1
    if fx_ts.size == 0 or at[0] < 0 or np.any(~np.isfinite(fx_rate)) or np.any(fx_rate <= 0):
        first_bad = 0 if fx_ts.size == 0 else int(np.argmax(at < 0))
        raise _fail(
            f"no {conv_col} conversion rate is known at the close of bar {first_bad} "
            f"({fx_ts.size} rate updates in the table)",
            f"{conv_col} present (published at or before each bar close) so the Binance leg can be valued in KRW",
            partition,
            rows.head(3).select("ts", conv_col),
        )
    conv = fx_rate[at]

    def volume(venue: str, symbol: str) -> np.ndarray:
        if candles.height == 0:
            return np.full(grid_ts.size, np.nan)
        part = candles.filter(
            (pl.col("venue") == venue) & (pl.col("symbol") == symbol) & (pl.col("interval_s") == interval)
        ).select(_us("ts").alias("t"), pl.col("volume"))
        out = np.full(grid_ts.size, np.nan)
        if part.height:
            t = part["t"].to_numpy()
            k = (t - grid_ts[0]) // step
            ok = (k >= 0) & (k < grid_ts.size) & ((t - grid_ts[0]) % step == 0)
            out[k[ok]] = part["volume"].fill_null(np.nan).to_numpy()[ok]
        out[~present] = 0.0
        return out

    kr_vol = volume(kr_venue, f"{coin}/KRW")
    bn_vol = volume("binance", f"{coin}/USDT")
    tradable = present & np.isfinite(premium_arr) & ~(kr_vol == 0) & ~(bn_vol == 0)
    return Market(
        coin=coin,
        kr_venue=kr_venue,
        interval_s=interval,
        premium_column=cfg.premium_column,
        ts=grid_ts,
        premium=premium_arr,
        kr_close=kr_close,
        bn_close=bn_close,
        conv=conv,
        kr_volume=kr_vol,
        bn_volume=bn_vol,
        tradable=tradable,
        fx_ts=fx_ts,
        fx_rate=fx_rate,
        kr_book=_book(orderbook, kr_venue, f"{coin}/KRW", partition),
        bn_book=_book(orderbook, "binance", f"{coin}/USDT", partition),
    )


def market_from_arrays(
    ts: np.ndarray,
    kr_close: np.ndarray,
    bn_close: np.ndarray,
    conv: np.ndarray,
    *,
    interval_s: int = 60,
    kr_volume: np.ndarray | None = None,
    bn_volume: np.ndarray | None = None,
    premium: np.ndarray | None = None,
    coin: str = "BTC",
    kr_venue: str = "upbit",
    kr_book: Book | None = None,
    bn_book: Book | None = None,
) -> Market:
    """A market straight from arrays (tests, benchmarks, synthetic studies); ``ts`` in µs (bar open).

    The conversion rate of each bar is taken as published at its close; volumes default to 1e9 coins
    (so size-dependent slippage is negligible); the premium defaults to ``kr / (bn x conv) - 1``.
    """
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.shape[0]
    if n == 0 or np.any(np.diff(ts) != interval_s * US):
        raise ValueError("market_from_arrays needs bars on a regular grid of interval_s seconds")
    kr = np.asarray(kr_close, dtype=np.float64)
    bn = np.asarray(bn_close, dtype=np.float64)
    cv = np.asarray(conv, dtype=np.float64)
    if not (np.all(np.isfinite(kr)) and np.all(np.isfinite(bn)) and np.all(np.isfinite(cv))):
        raise ValueError("market_from_arrays: prices and conversion rates must be finite")
    big = np.full(n, 1e9)
    return Market(
        coin=coin,
        kr_venue=kr_venue,
        interval_s=interval_s,
        premium_column="premium_fx",
        ts=ts,
        premium=kr / (bn * cv) - 1.0 if premium is None else np.asarray(premium, dtype=np.float64),
        kr_close=kr,
        bn_close=bn,
        conv=cv,
        kr_volume=big if kr_volume is None else np.asarray(kr_volume, dtype=np.float64),
        bn_volume=big if bn_volume is None else np.asarray(bn_volume, dtype=np.float64),
        tradable=np.ones(n, dtype=np.bool_),
        fx_ts=ts + interval_s * US,
        fx_rate=cv,
        kr_book=kr_book,
        bn_book=bn_book,
    )
