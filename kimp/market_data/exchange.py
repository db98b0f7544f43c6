"""ExchangeSource: candles downloaded through ccxt, USD/KRW from a daily file or the ECB (Frankfurter API).

- candles: ``fetch_ohlcv`` paged with ``since``/``limit`` until the UTC day is covered (Upbit 200, Binance 1000
  candles a request); ccxt's own rate limiter is on (``enableRateLimit``). Rows are restricted to the day,
  de-duplicated on ts, and a candle that has not closed yet (``ts + interval > now``) is dropped.
  Bithumb's public candlestick endpoint (as ccxt uses it) ignores ``since`` and only serves the most recent
  window of candles: a day older than that window is a MarketDataError, never a silently partial day.
- fx: ccxt has no FX. With ``fx_dir`` the daily USD/KRW file is read exactly as FilesSource does; otherwise ECB
  reference rates come from the Frankfurter API (published_at = value date 15:00 UTC, i.e. ~16:00 CET).
- news: from public RSS/Atom feeds when an ``RssArchive`` with feeds is given (kimp.market_data.rss): asking
  for today's or yesterday's news polls the feeds first; older days read what the archive collected.
- order books, on-chain, macro (and news without feeds): not available for historical days (provides() False,
  empty frames).
- quote_volume is null: ccxt's unified OHLCV has base volume only.

Exchanges are created lazily by a factory (``make_exchange``), so tests inject instances whose HTTP layer is
replaced by recorded responses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from kimp.errors import MarketDataError
from kimp.market_data.schemas import (
    CANDLES,
    FX,
    MACRO,
    NEWS,
    ONCHAIN,
    ORDERBOOK,
    UTC_TS,
    conform,
    empty,
)
from kimp.market_data.source import Table
from kimp.timeutil import day_bounds, parse_day

if TYPE_CHECKING:
    from kimp.market_data.files import FilesSource
    from kimp.market_data.rss import RssArchive

log = logging.getLogger(__name__)

SOURCE = "exchange"

DEFAULT_SYMBOLS: dict[str, tuple[str, ...]] = {
    "upbit": ("BTC/KRW", "ETH/KRW", "USDT/KRW"),
    "bithumb": ("BTC/KRW", "ETH/KRW"),
    "binance": ("BTC/USDT", "ETH/USDT"),
}
# Most candles one request returns (the exchanges' documented maxima).
PAGE_LIMITS: dict[str, int] = {"upbit": 200, "binance": 1000}
# Exchanges whose ccxt fetch_ohlcv ignores `since`: one request returns the most recent window.
SINCE_IGNORED: frozenset[str] = frozenset({"bithumb"})

FRANKFURTER_URL = "https://api.frankfurter.app/{start}..{end}?from=USD&to=KRW"
# ECB reference rates are published around 16:00 CET; 15:00 UTC is used for every value date (see docs).
ECB_PUBLISH_UTC = timedelta(hours=15)

ExchangeLike = Any  # a ccxt.Exchange (typed loosely: ccxt ships no stubs)
ExchangeFactory = Callable[[str], ExchangeLike]


def make_exchange(venue: str) -> ExchangeLike:
    """A ccxt exchange for ``venue`` with the rate limiter on and optional keys from the environment.

    Keys (not needed for public candles): ``KIMP_{VENUE}_API_KEY`` and ``KIMP_{VENUE}_SECRET``.
    """
    import ccxt  # lazy: importing ccxt takes seconds

    config: dict[str, Any] = {"enableRateLimit": True}
    key = os.environ.get(f"KIMP_{venue.upper()}_API_KEY")
    secret = os.environ.get(f"KIMP_{venue.upper()}_SECRET")
    if key and secret:
        config["apiKey"], config["secret"] = key, secret
    if venue == "binance":
        # spot only: one exchangeInfo request instead of spot + USD-M + COIN-M, and no private currency call
        config["options"] = {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
        }
    try:
        cls = getattr(ccxt, venue)
    except AttributeError as e:
        raise ValueError(f"ccxt has no exchange {venue!r}") from e
    return cls(config)


def http_get_json(url: str, timeout: float = 30.0) -> Any:
    """GET ``url`` and decode JSON (stdlib only). Tests replace this function."""
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "kimp/0.1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ExchangeSource:
    """Market data downloaded from the exchanges (ccxt) and the ECB; see the module docstring."""

    name = "exchange"

    def __init__(
        self,
        fx_dir: str | None = None,
        exchanges: Mapping[str, ExchangeLike | Callable[[], ExchangeLike]] | None = None,
        *,
        timeframe: str = "1m",
        symbols: Mapping[str, Sequence[str]] | None = None,
        factory: ExchangeFactory = make_exchange,
        page_limits: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        news_archive: RssArchive | None = None,
    ) -> None:
        """``exchanges`` maps a venue to a ready ccxt instance or a zero-argument factory; venues missing from
        it are built by ``factory`` on first use. ``symbols`` overrides DEFAULT_SYMBOLS (and the venue list).
        """
        self.fx_dir = fx_dir
        self.timeframe = timeframe
        self.symbols: dict[str, tuple[str, ...]] = {
            v: tuple(s) for v, s in (symbols if symbols is not None else DEFAULT_SYMBOLS).items()
        }
        self._given = dict(exchanges or {})
        self._factory = factory
        self._instances: dict[str, ExchangeLike] = {}
        self._limits = {**PAGE_LIMITS, **(page_limits or {})}
        self._clock = clock
        self.news_archive = news_archive
        self._fx_files: FilesSource | None = None
        self._ecb_cache: dict[tuple[date, date], dict[date, float]] = {}
        self.interval_s = timeframe_seconds(timeframe)

    # -------------------------------------------------------------------------------------- protocol

    def provides(self, table: Table, venue: str | None = None) -> bool:
        if table == "candles":
            return bool(self.symbols) if venue is None else bool(self.symbols.get(venue))
        if table == "news":
            return self.news_archive is not None and bool(self.news_archive.feeds)
        return table == "fx"

    def candles(self, venue: str, day: date) -> pl.DataFrame:
        """Candles of the configured symbols of ``venue`` whose open time falls on ``day`` (closed bars only)."""
        d = parse_day(day)
        symbols = self.symbols.get(venue)
        if not symbols:
            return empty(CANDLES)
        start, _ = day_bounds(d)
        if start >= self._clock():
            return empty(CANDLES)
        ex = self._exchange(venue, d)
        parts = [self._symbol_day(venue, ex, symbol, d) for symbol in symbols]
        frame = pl.concat(parts) if parts else empty(CANDLES)
        return conform(frame.sort("symbol", "ts"), CANDLES, table="candles")

    def fx(self, day: date) -> pl.DataFrame:
        d = parse_day(day)
        if self.fx_dir:
            return self._fx_from_files(d)
        return self._fx_from_ecb(d)

    def orderbook(self, day: date) -> pl.DataFrame:
        return empty(ORDERBOOK)

    def onchain(self, day: date) -> pl.DataFrame:
        return empty(ONCHAIN)

    def macro(self, day: date) -> pl.DataFrame:
        return empty(MACRO)

    def news(self, day: date) -> pl.DataFrame:
        archive = self.news_archive
        if archive is None or not archive.feeds:
            return empty(NEWS)
        d = parse_day(day)
        if d >= self._clock().date() - timedelta(days=1):  # feeds list only their latest items
            report = archive.fetch()
            log.info("news feeds: %d new items, %d feeds failed", report.new_items, len(report.failures))
        return archive.news(d)

    # -------------------------------------------------------------------------------------- candles

    def _exchange(self, venue: str, day: date) -> ExchangeLike:
        if venue not in self._instances:
            given = self._given.get(venue)
            try:
                if given is None:
                    inst = self._factory(venue)
                elif callable(given) and not hasattr(given, "fetch_ohlcv"):
                    inst = given()
                else:
                    inst = given
            except Exception as e:
                raise MarketDataError(
                    source=SOURCE,
                    partition=day,
                    problem=f"cannot create the ccxt exchange {venue!r}: {type(e).__name__}: {e}",
                    expected="a ccxt exchange id (upbit, bithumb, binance) and a working ccxt install",
                ) from e
            self._instances[venue] = inst
        return self._instances[venue]

    def _symbol_day(self, venue: str, ex: ExchangeLike, symbol: str, day: date) -> pl.DataFrame:
        import ccxt

        start, end = day_bounds(day)
        start_ms, end_ms = _ms(start), _ms(end)
        tf_ms = self.interval_s * 1000
        now_ms = _ms(self._clock())
        try:
            if venue in SINCE_IGNORED:
                rows = self._latest_window(venue, ex, symbol, day, start_ms)
            else:
                rows = self._paged(ex, symbol, start_ms, min(end_ms, now_ms), tf_ms, self._limits.get(venue))
        except MarketDataError:
            raise
        except (ccxt.BaseError, OSError, ValueError, KeyError, TypeError) as e:
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"{venue} {symbol}: fetch_ohlcv({self.timeframe}) failed: {type(e).__name__}: {e}",
                expected=f"{venue} to answer the public OHLCV request for {symbol} on {day}",
            ) from e
        # restrict to the day, drop a still-forming candle, dedupe on ts (the last page wins)
        by_ts: dict[int, list[Any]] = {}
        for c in rows:
            ts = int(c[0])
            if start_ms <= ts < end_ms and ts + tf_ms <= now_ms:
                by_ts[ts] = list(c)
        kept = [by_ts[t] for t in sorted(by_ts)]
        frame = ohlcv_frame(kept, venue, symbol, self.interval_s)
        bad = frame.filter(
            pl.any_horizontal(
                [
                    pl.col(c).is_null() | pl.col(c).is_nan() | (pl.col(c) <= 0)
                    for c in ("open", "high", "low", "close")
                ]
            )
            | (pl.col("volume") < 0)
        )
        if bad.height:
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"{venue} {symbol}: {bad.height} candle(s) with missing, NaN or non-positive prices",
                expected="finite positive open/high/low/close and non-negative volume",
                rows=bad.select("ts", "open", "high", "low", "close", "volume"),
            )
        return frame

    def _paged(
        self, ex: ExchangeLike, symbol: str, start_ms: int, end_ms: int, tf_ms: int, limit: int | None
    ) -> list[list[Any]]:
        """fetch_ohlcv from ``start_ms`` until ``end_ms``: next page from the last candle + 1 bar; a page with no
        candle in its window (no trades, maintenance) moves on by a full window."""
        out: list[list[Any]] = []
        since = start_ms
        window = (limit or 500) * tf_ms
        max_pages = math.ceil((end_ms - start_ms) / tf_ms) + 2  # one candle a page at worst
        pages = 0
        while since < end_ms:
            pages += 1
            if pages > max_pages:
                raise RuntimeError(f"paging did not finish after {max_pages} pages (since={since})")
            batch = ex.fetch_ohlcv(symbol, self.timeframe, since=since, limit=limit)
            batch = [c for c in (batch or []) if c and c[0] is not None and int(c[0]) >= since]
            if not batch:
                since += window
                continue
            out.extend(batch)
            since = max(int(c[0]) for c in batch) + tf_ms
        return out

    def _latest_window(
        self, venue: str, ex: ExchangeLike, symbol: str, day: date, start_ms: int
    ) -> list[list[Any]]:
        rows = [c for c in (ex.fetch_ohlcv(symbol, self.timeframe) or []) if c and c[0] is not None]
        first = min((int(c[0]) for c in rows), default=None)
        if first is None or first > start_ms:
            served = (
                "no candles at all"
                if first is None
                else f"candles from {datetime.fromtimestamp(first / 1000, UTC):%Y-%m-%d %H:%M} UTC on"
            )
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=(
                    f"{venue} {symbol}: the public candlestick API only serves the most recent candles "
                    f"({served}); {day} is out of its reach"
                ),
                expected=f"a day inside the window {venue} serves, or the files source for older history",
            )
        return rows

    # -------------------------------------------------------------------------------------- fx

    def _fx_from_files(self, day: date) -> pl.DataFrame:
        from kimp.market_data.files import FilesSource

        if self._fx_files is None:
            self._fx_files = FilesSource(str(self.fx_dir), error_source=SOURCE)
        if not self._fx_files.provides("fx"):
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"fx_dir {self.fx_dir!r} holds no USD/KRW daily file",
                expected="a file whose name contains 'USDKRW' and 'daily' (e.g. USDKRW_daily.csv), "
                "or no fx_dir to use ECB rates",
            )
        return self._fx_files.fx(day)

    def _fx_from_ecb(self, day: date) -> pl.DataFrame:
        today = self._clock().date()
        if day > today:
            return empty(FX)
        month_start = day.replace(day=1)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        end = min(next_month - timedelta(days=1), today)
        rates = self._ecb_rates(month_start, end, day)
        if day not in rates:  # weekend, TARGET holiday, or not yet published
            return empty(FX)
        ts = datetime(day.year, day.month, day.day, tzinfo=UTC)
        published = ts + ECB_PUBLISH_UTC
        if published > self._clock():
            return empty(FX)
        frame = pl.DataFrame(
            {
                "ts": [ts],
                "series": ["daily_close"],
                "interval_s": [86_400],
                "published_at": [published],
                "open": [None],
                "high": [None],
                "low": [None],
                "close": [rates[day]],
                "source": ["ecb"],
            },
            schema_overrides={
                "ts": UTC_TS,
                "published_at": UTC_TS,
                "open": pl.Float64,
                "high": pl.Float64,
                "low": pl.Float64,
            },
        )
        return conform(frame, FX, table="fx")

    def _ecb_rates(self, start: date, end: date, day: date) -> dict[date, float]:
        key = (start, end)
        if key in self._ecb_cache:
            return self._ecb_cache[key]
        url = FRANKFURTER_URL.format(start=start.isoformat(), end=end.isoformat())
        try:
            doc = http_get_json(url)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"ecb USD/KRW: GET {url} failed: {type(e).__name__}: {e}",
                expected="the Frankfurter API (ECB reference rates) to answer, or fx_dir with a USDKRW daily file",
            ) from e
        rates: dict[date, float] = {}
        problems: list[str] = []
        raw = doc.get("rates") if isinstance(doc, dict) else None
        if not isinstance(raw, dict):
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"ecb USD/KRW: unexpected answer from {url}: {str(doc)[:200]}",
                expected='JSON {"rates": {"YYYY-MM-DD": {"KRW": <rate>}, ...}}',
            )
        for k, v in raw.items():
            try:
                value = float(v["KRW"])
                d = date.fromisoformat(k)
            except (KeyError, TypeError, ValueError):
                problems.append(f"{k}: {v}")
                continue
            if not math.isfinite(value) or value <= 0:
                problems.append(f"{k}: {v}")
                continue
            rates[d] = value
        if problems:
            raise MarketDataError(
                source=SOURCE,
                partition=day,
                problem=f"ecb USD/KRW: {len(problems)} unreadable rate(s) in the answer from {url}",
                expected="a positive KRW rate per date",
                rows=problems,
            )
        self._ecb_cache[key] = rates
        return rates


# ------------------------------------------------------------------------------------------ helpers


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def timeframe_seconds(timeframe: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if len(timeframe) < 2 or timeframe[-1] not in units or not timeframe[:-1].isdigit():
        raise ValueError(f"unsupported timeframe {timeframe!r}: expected e.g. 1m, 5m, 1h, 1d")
    return int(timeframe[:-1]) * units[timeframe[-1]]


def ohlcv_frame(rows: list[list[Any]], venue: str, symbol: str, interval_s: int) -> pl.DataFrame:
    base, quote = symbol.split("/")

    def col(i: int) -> list[float | None]:
        return [None if len(r) <= i or r[i] is None else float(r[i]) for r in rows]

    return pl.DataFrame(
        {
            "ts": [datetime.fromtimestamp(int(r[0]) / 1000, UTC) for r in rows],
            "venue": [venue] * len(rows),
            "symbol": [symbol] * len(rows),
            "base": [base] * len(rows),
            "quote": [quote] * len(rows),
            "interval_s": [interval_s] * len(rows),
            "open": col(1),
            "high": col(2),
            "low": col(3),
            "close": col(4),
            "volume": col(5),
            "quote_volume": [None] * len(rows),
        },
        schema=CANDLES,
    )
