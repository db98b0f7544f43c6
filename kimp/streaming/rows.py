"""The base row of one new bar, built from the raw rows the engine holds: the streaming form of
kimp.premium.compute_premium + kimp.features.inputs.prepare + base_frame for a single bar.

The batch code builds a polars frame of the whole grid; at a bar close that costs some 400 small polars
operations (about 50 ms of CPU per coin). Here each raw row is turned into a Python record once, when it
arrives, and the bar's row is read from them: the bar's candles, books and news are a few records; the
as-of tables (FX, on-chain, macro) are kept sorted by publication time, so an as-of lookup is a bisection.
Every rule is the batch code's, cited where it is applied (stale bars, zero-volume placeholders, fresh
books, tolerances, Kleene nulls, non-finite inputs made null, the days each table is read from), and
tests/test_streaming_parity.py proves the resulting features equal the batch ``features`` asset's. The
news tone and the scored-news sums are the batch functions themselves, run on the bar's few rows.

Times are epoch microseconds (UTC) inside; the row hands datetimes to the program as the batch row does.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from kimp.features.families.sentiment import BAR_COLUMNS as SENTIMENT_BAR_COLUMNS
from kimp.features.families.sentiment import bar_sums as sentiment_bar_sums
from kimp.features.inputs import (
    COIN_WORDS,
    FX_MAX_AGE,
    MACRO_MAX_AGE,
    ONCHAIN_FLOWS,
    ONCHAIN_LEVELS,
    ONCHAIN_MAX_AGE,
    REQUIRED,
    _sanitize,
    base_columns,
    news_tone,
)
from kimp.features.types import FeatureConfig
from kimp.market_data.schemas import BOOK_LEVELS, COINS, KR_VENUES, MACRO_SERIES
from kimp.premium import FX_LOOKBACK_DAYS

US = 1_000_000
DAY_US = 86_400 * US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BAR_LOCAL = ("candles", "orderbook", "news", "news_sentiment")
AS_OF = ("fx", "onchain", "macro")
NAN = float("nan")
INF = float("inf")
_BASE = tuple(base_columns())
_BOOK_LAST = (
    "spread",
    "imb1",
    "imb5",
    "imb10",
    "micro",
    *(f"{s}sz{i}" for s in ("b", "a") for i in range(1, BOOK_LEVELS + 1)),
)
_BID_SZ = tuple(f"bid_sz_{i}" for i in range(1, BOOK_LEVELS + 1))
_ASK_SZ = tuple(f"ask_sz_{i}" for i in range(1, BOOK_LEVELS + 1))
_NEWS_COLS = ("n_count", "n_tone", "n_kimchi", "n_coin", "n_coin_tone")


def to_us(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _fin(x: object) -> float | None:
    """A float input as prepare() leaves it: null for null, NaN and +-inf."""
    if x is None:
        return None
    x = float(x)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None


def _div(a: float, b: float) -> float:
    """IEEE division (polars'): x/0 is +-inf, 0/0 and NaN/0 are NaN."""
    if b == 0.0:
        if a == 0.0 or a != a:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def _log(x: float) -> float:
    if x > 0.0:
        return math.log(x) if x != INF else INF
    if x == 0.0:
        return -INF
    return NAN


def _sum(values: Iterable[float]) -> float:
    s = 0.0
    for v in values:
        s += v
    return s


def column(series: pl.Series) -> list:
    """A column as a list, datetimes as epoch microseconds (no polars expression: each one costs a query)."""
    if isinstance(series.dtype, pl.Datetime):
        scale = {"ns": None, "us": 1, "ms": 1000}[series.dtype.time_unit or "us"]
        values = series.to_physical().to_list()
        if scale is None:
            return [None if v is None else v // 1000 for v in values]
        return values if scale == 1 else [None if v is None else v * scale for v in values]
    return series.to_list()


def records(frame: pl.DataFrame) -> list[dict]:
    """Rows as dicts, datetimes as epoch microseconds."""
    names = frame.columns
    if frame.height > 64:  # column by column (a few polars calls per column)
        return [
            dict(zip(names, values, strict=True)) for values in zip(*(column(s) for s in frame), strict=True)
        ]
    # a live event's few rows: Python values, datetimes converted here (cheaper than a query per column)
    dts = [i for i, t in enumerate(frame.dtypes) if isinstance(t, pl.Datetime)]
    out = []
    for values in frame.iter_rows():
        row = dict(zip(names, values, strict=True))
        for i in dts:
            v = values[i]
            row[names[i]] = None if v is None else to_us(v if v.tzinfo else v.replace(tzinfo=UTC))
        out.append(row)
    return out


def book_records(frame: pl.DataFrame) -> list[dict]:
    """Order-book snapshots as records: ``ts`` (epoch us), venue, symbol, the raw top of book (for the
    provisional candles) and ``_book``, the snapshot's values as kimp.features.inputs._book_cols computes
    them (prepare() nulls non-finite inputs; sizes are zero-filled for the imbalances only), computed once
    per snapshot with numpy, not at every close and tick."""
    n = frame.height
    px = np.column_stack([_floats(frame[c]) for c in ("bid_px_1", "ask_px_1")])
    sizes = np.column_stack([_floats(frame[c]) for c in (*_BID_SZ, *_ASK_SZ)])
    ok_px = np.isfinite(px)
    ok_sz = np.isfinite(sizes)
    filled = np.where(ok_sz, sizes, 0.0)
    # sum_horizontal folds left to right: so does cumsum
    cum_b = np.cumsum(filled[:, :BOOK_LEVELS], axis=1)
    cum_a = np.cumsum(filled[:, BOOK_LEVELS:], axis=1)
    bp, ap = px[:, 0], px[:, 1]
    bs, as_ = sizes[:, 0], sizes[:, BOOK_LEVELS]
    ok_mid = ok_px[:, 0] & ok_px[:, 1]
    ok_micro = ok_mid & ok_sz[:, 0] & ok_sz[:, BOOK_LEVELS]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        imb = [(cum_b[:, k] - cum_a[:, k]) / (cum_b[:, k] + cum_a[:, k]) for k in (0, 4, 9)]
        mid = (bp + ap) / 2
        spread = (ap - bp) / mid * 1e4
        micro = ((ap * bs + bp * as_) / (bs + as_) / mid - 1.0) * 1e4
    values: dict[str, list] = {
        "spread": _nullable(spread, ok_mid),
        "imb1": imb[0].tolist(),
        "imb5": imb[1].tolist(),
        "imb10": imb[2].tolist(),
        "micro": _nullable(micro, ok_micro),
    }
    for i in range(BOOK_LEVELS):
        values[f"bsz{i + 1}"] = _nullable(sizes[:, i], ok_sz[:, i])
        values[f"asz{i + 1}"] = _nullable(sizes[:, BOOK_LEVELS + i], ok_sz[:, BOOK_LEVELS + i])
    names = list(values)
    books = [dict(zip(names, vals, strict=True)) for vals in zip(*values.values(), strict=True)]
    ts = [to_us(v) for v in frame["ts"].to_list()]
    venue, symbol = frame["venue"].to_list(), frame["symbol"].to_list()
    raw_b, raw_a = frame["bid_px_1"].to_list(), frame["ask_px_1"].to_list()
    return [
        {
            "ts": ts[k],
            "venue": venue[k],
            "symbol": symbol[k],
            "bid_px_1": raw_b[k],
            "ask_px_1": raw_a[k],
            "_book": books[k],
        }
        for k in range(n)
    ]


def _floats(series: pl.Series) -> np.ndarray:
    """Float64 values, null as NaN (non-finite, like null, is masked by the caller)."""
    return series.to_numpy().astype(np.float64, copy=False)


def _nullable(values: np.ndarray, ok: np.ndarray) -> list:
    return [v if k else None for v, k in zip(values.tolist(), ok.tolist(), strict=True)]


class _AsOf:
    """Rows sorted by a key (publication time), for backward as-of lookups; equal keys keep arrival order,
    so the last of them is found first (the batch code's ``unique(keep="last")``)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, ...]] = []
        self.rows: list[dict] = []

    def add(self, key: tuple[int, ...], row: dict) -> None:
        if not self.keys or key >= self.keys[-1]:
            self.keys.append(key)
            self.rows.append(row)
            return
        i = bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.rows.insert(i, row)

    def upto(self, key: int) -> int:
        """Index one past the last row whose first key is <= ``key``."""
        return bisect_right(self.keys, (key, math.inf))

    def trim(self, keep) -> None:
        kept = [(k, r) for k, r in zip(self.keys, self.rows, strict=True) if keep(r)]
        self.keys = [k for k, _ in kept]
        self.rows = [r for _, r in kept]


class BaseRows:
    """Raw rows in, base rows of new bars out (one dict per coin, the columns of the batch base frame)."""

    def __init__(self, config: FeatureConfig, interval_s: int, lookback: dict[str, int]) -> None:
        self.config = config
        self.iv = int(interval_s)
        self.iv_us = self.iv * US
        self.lookback = lookback
        self.bars: dict[str, dict[int, list]] = {t: {} for t in BAR_LOCAL}
        self.fx = _AsOf()  # every FX row with a close (the premium's USD/KRW), key (published_at, ts)
        self.fixing = _AsOf()  # fixing / daily_close rows with a finite close, key (published_at,)
        self.onchain: dict[str, _AsOf] = {}
        self.macro: dict[str, _AsOf] = {s: _AsOf() for s in MACRO_SERIES}
        self.seen: dict[str, int] = {}  # newest ts of each table: whether the source provides it
        self.unusable: set[str] = set()
        self.max_book_age_us = config.orderbook_max_age_s * US
        self._trimmed_day: int | None = None

    # ------------------------------------------------------------------ rows in
    def add(self, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        missing = [c for c in REQUIRED[table] if c not in frame.columns]
        if missing:
            # the batch build reads such a table as not provided (its families are null)
            self.unusable.add(table)
            return
        if table == "news":
            rows = records(news_tone(frame))
            self._bar_local(table, rows)
        elif table == "news_sentiment":
            # kept as frames: the batch bar_sums runs on a bar's rows at its close (sanitized as prepare does)
            frame = _sanitize(table, frame, [])
            keyed = frame.with_columns(_bar=pl.col("ts").dt.epoch("us") // self.iv_us * self.iv_us)
            for (b,), part in keyed.partition_by("_bar", as_dict=True).items():
                self.bars[table].setdefault(int(b), []).append(part.drop("_bar"))  # type: ignore[arg-type]
            rows = [{"ts": v} for v in column(frame["ts"])]
        elif table == "orderbook":
            rows = book_records(frame)
            self._bar_local(table, rows)
        elif table in BAR_LOCAL:
            rows = records(frame)
            self._bar_local(table, rows)
        else:
            rows = records(frame)
            self._as_of(table, rows)
        latest = max((r["ts"] for r in rows if r["ts"] is not None), default=None)
        if latest is not None and latest > self.seen.get(table, -(2**62)):
            self.seen[table] = latest

    def see(self, table: str, latest: datetime) -> None:
        """Note that the source provides ``table`` (rows up to ``latest``) without keeping the rows."""
        us = to_us(latest)
        if us > self.seen.get(table, -(2**62)):
            self.seen[table] = us

    def _bar_local(self, table: str, rows: list[dict]) -> None:
        iv = self.iv_us
        store = self.bars[table]
        for r in rows:
            store.setdefault(r["ts"] // iv * iv, []).append(r)

    def _as_of(self, table: str, rows: list[dict]) -> None:
        if table == "fx":
            for r in rows:
                if r["close"] is not None:
                    self.fx.add((r["published_at"], r["ts"]), r)
                    if r["series"] in ("fixing", "daily_close") and _fin(r["close"]) is not None:
                        self.fixing.add((r["published_at"],), r)
        elif table == "onchain":
            for r in rows:
                self.onchain.setdefault(r["coin"], _AsOf()).add((r["published_at"],), r)
        else:
            for r in rows:
                store = self.macro.get(r["series"])
                if store is not None and _fin(r["value"]) is not None:
                    store.add((r["published_at"],), r)

    def trim(self, next_bar_us: int) -> None:
        """Forget bars before the previous one and as-of rows older than any look-back still reads."""
        for store in self.bars.values():
            for b in [b for b in store if b < next_bar_us - self.iv_us]:
                del store[b]
        d0 = next_bar_us - next_bar_us % DAY_US
        if d0 == self._trimmed_day:
            return
        self._trimmed_day = d0
        stores = {
            "fx": [self.fx, self.fixing],
            "onchain": self.onchain.values(),
            "macro": self.macro.values(),
        }
        for table in AS_OF:
            days = max(self.lookback.get(table, 0), FX_LOOKBACK_DAYS if table == "fx" else 0) + 1
            cut = d0 - days * DAY_US
            for store in stores[table]:
                store.trim(lambda r, cut=cut: r["ts"] >= cut)

    # ------------------------------------------------------------------ bar rows out
    def _present(self, table: str, since: int) -> bool:
        """Whether the batch build would read ``table`` as provided in a window starting at ``since``."""
        return table not in self.unusable and self.seen.get(table, -(2**62)) >= since

    def provisional_candles(self, bar: int) -> list[dict]:
        """The open bar's candles as its books show them so far: the mid's first, highest, lowest and
        latest value (volume unknown: NaN). Snapshots with a non-finite mid are skipped."""
        out: dict[tuple[str, str], dict] = {}
        for r in sorted(self.bars["orderbook"].get(bar, ()), key=lambda r: r["ts"]):
            b, a = r["bid_px_1"], r["ask_px_1"]
            if b is None or a is None:
                continue
            mid = (b + a) / 2
            if not math.isfinite(mid):
                continue
            key = (r["venue"], r["symbol"])
            c = out.get(key)
            if c is None:
                base, _, quote = r["symbol"].partition("/")
                out[key] = {
                    "ts": bar,
                    "venue": r["venue"],
                    "symbol": r["symbol"],
                    "base": base,
                    "quote": quote,
                    "interval_s": self.iv,
                    "open": mid,
                    "high": mid,
                    "low": mid,
                    "close": mid,
                    "volume": NAN,
                    "quote_volume": NAN,
                }
            else:
                c["high"] = max(c["high"], mid)
                c["low"] = min(c["low"], mid)
                c["close"] = mid
        return list(out.values())

    def premium(self, bar: int, candles: list[dict]) -> dict[tuple[str, str], dict]:
        """kimp.premium.compute_premium of the bar's candles, as prepare() leaves it: (coin, kr venue) ->
        row, for the engine's coins at its interval, non-finite values null."""
        by_venue: dict[str, list[dict]] = {}
        for c in candles:
            by_venue.setdefault(c["venue"], []).append(c)
        binance = by_venue.get("binance", [])
        usdt = [c for c in by_venue.get("upbit", []) if c["base"] == "USDT" and c["quote"] == "KRW"]
        d0 = bar - bar % DAY_US
        out: dict[tuple[str, str], dict] = {}
        for venue in KR_VENUES:
            rows = by_venue.get(venue)
            if not rows:
                continue
            for coin in COINS:
                kr = [c for c in rows if c["base"] == coin and c["quote"] == "KRW"]
                if not kr or coin not in self.config.coins:
                    continue
                foreign = [c for c in binance if c["base"] == coin and c["quote"] == "USDT"]
                kr_iv = {c["interval_s"] for c in kr}
                common = kr_iv & {c["interval_s"] for c in foreign}
                interval = min(common) if common else min(kr_iv)
                if interval != self.iv:
                    continue  # the premium of another interval: prepare() drops it
                k = [c for c in kr if c["interval_s"] == interval][-1]
                f = next((c for c in reversed(foreign) if c["interval_s"] == interval), None)
                u = next((c for c in reversed(usdt) if c["interval_s"] == interval), None)
                out[(coin, venue)] = self._premium_row(k, f, u, d0, bar + interval * US)
        return out

    def _premium_row(self, k: dict, f: dict | None, u: dict | None, d0: int, close_at: int) -> dict:
        fx = self.fx_at(close_at, d0 - FX_LOOKBACK_DAYS * DAY_US)
        usdkrw = fx["close"] if fx is not None else None
        kr_vol = k["volume"]
        bn_vol = f["volume"] if f is not None and f["volume"] is not None else 1.0
        usdt_vol = u["volume"] if u is not None and u["volume"] is not None else 1.0
        # Kleene logic: (kr_vol == 0) | (bn_vol.fill_null(1) == 0), null when kr_vol is null
        stale: bool | None = True if bn_vol == 0 else (None if kr_vol is None else kr_vol == 0)
        usdt_stale = True if (stale is True or usdt_vol == 0) else stale
        kr_close = k["close"]
        bn_close = f["close"] if f is not None else None
        usdt_close = u["close"] if u is not None else None

        def prem(x: float | None, flag: bool | None) -> float | None:
            if flag is not False or kr_close is None or bn_close is None or x is None:
                return None
            return _fin(_div(kr_close, bn_close * x) - 1.0)

        return {
            "premium_fx": prem(usdkrw, stale),
            "premium_usdt": prem(usdt_close, usdt_stale),
            "kr_close": _fin(kr_close),
            "binance_close": _fin(bn_close),
            "usdt_krw_close": _fin(usdt_close),
            "usdkrw": _fin(usdkrw),
            "fx_published_at": fx["published_at"] if fx is not None else None,
            "stale": stale,
        }

    def fx_at(self, close_at: int, since: int) -> dict | None:
        """The USD/KRW row the premium joins: newest (published_at, ts) published by the close, among the
        rows of the days the asset reads."""
        i = self.fx.upto(close_at)
        rows = self.fx.rows
        while i > 0:
            i -= 1
            if rows[i]["ts"] >= since:
                return rows[i]
        return None

    def venues(self, premium: dict[tuple[str, str], dict], coin: str) -> tuple[str, str | None, str | None]:
        """kimp.features.inputs.kr_venues on the bar's premium rows."""
        own = [v for v in self.config.kr_venues if (coin, v) in premium]
        if not own:
            own = [self.config.kr_venues[0]]
        partner = "ETH" if coin != "ETH" else "BTC"
        partner_venue = next((v for v in self.config.kr_venues if (partner, v) in premium), None)
        return own[0], (own[1] if len(own) > 1 else None), partner_venue

    def row(
        self,
        bar: int,
        coin: str,
        venues: tuple[str, str | None, str | None],
        premium: dict[tuple[str, str], dict],
        candles: list[dict],
        history_start: int,
    ) -> dict[str, object]:
        """The base-frame row of ``coin`` for the bar that opened at ``bar`` (epoch us)."""
        iv = self.iv_us
        close = bar + iv
        d0 = bar - bar % DAY_US
        since = {t: d0 - self.lookback.get(t, 0) * DAY_US for t in (*BAR_LOCAL, *AS_OF)}
        row: dict[str, object] = dict.fromkeys(_BASE)
        row["ts"] = from_us(bar)
        row["_close"] = from_us(close)
        row["_hist_s"] = (bar - history_start) // US
        kr_venue, alt_venue, partner_venue = venues
        main = premium.get((coin, kr_venue))
        pkr = pbn = None
        if main is not None:
            row["p_fx"], row["p_usdt"] = main["premium_fx"], main["premium_usdt"]
            if main["stale"] is False:
                pkr, pbn = main["kr_close"], main["binance_close"]
            row["usdt_krw"], row["usdkrw"] = main["usdt_krw_close"], main["usdkrw"]
        row["fx_pub"] = (
            from_us(main["fx_published_at"]) if main and main["fx_published_at"] is not None else None
        )
        for suffix, key in (
            ("_alt", (coin, alt_venue or "")),
            ("_oth", ("ETH" if coin != "ETH" else "BTC", partner_venue or "")),
        ):
            other = premium.get(key)  # type: ignore[arg-type]
            if other is not None:
                row[f"p_fx{suffix}"], row[f"p_usdt{suffix}"] = other["premium_fx"], other["premium_usdt"]

        # candles: each leg's own close (null on its zero-volume bars), the premium row's as fallback
        for prefix, venue, quote, fallback in (("kr", kr_venue, "KRW", pkr), ("bn", "binance", "USDT", pbn)):
            c = None
            for r in candles:
                if (
                    r["venue"] == venue
                    and r["base"] == coin
                    and r["quote"] == quote
                    and r["interval_s"] == self.iv
                ):
                    c = r  # the last of duplicates
            if c is None:
                row[f"{prefix}_c"] = fallback
                continue
            vol = _fin(c["volume"])
            real = None if vol is None else vol != 0  # not a placeholder (null when the volume is)
            cl = _fin(c["close"])
            for name in ("open", "high", "low"):
                row[f"{prefix}_{name[0]}"] = _fin(c[name]) if real else None
            candle_c = cl if real else None
            row[f"{prefix}_c"] = candle_c if candle_c is not None else fallback
            row[f"{prefix}_v"] = vol
            qv = _fin(c.get("quote_volume"))
            row[f"{prefix}_qv"] = (
                qv if qv is not None else (cl * vol if cl is not None and vol is not None else None)
            )

        if self._present("orderbook", since["orderbook"]):
            snaps = self.bars["orderbook"].get(bar, ())
            for prefix, venue, symbol in (("kr", kr_venue, f"{coin}/KRW"), ("bn", "binance", f"{coin}/USDT")):
                self._book(
                    row, prefix, [s for s in snaps if s["venue"] == venue and s["symbol"] == symbol], close
                )

        fixing = self._latest(self.fixing, close, since["fx"], FX_MAX_AGE)
        if fixing is not None:
            row["fx_fix"], row["fx_fix_pub"] = float(fixing["close"]), from_us(fixing["published_at"])

        self._onchain(row, coin, bar, since["onchain"])
        self._macro(row, close, since["macro"])

        if self._present("news", since["news"]):
            items = self.bars["news"].get(bar, ())
            mention = f"mention_{coin}"
            has = coin in COIN_WORDS
            row["n_count"] = float(len(items))
            row["n_tone"] = _sum(r["tone"] for r in items)
            row["n_kimchi"] = float(sum(1 for r in items if r["kimchi"]))
            row["n_coin"] = float(sum(1 for r in items if r[mention])) if has else 0.0
            row["n_coin_tone"] = _sum(r["tone"] * bool(r[mention]) for r in items) if has else 0.0

        if self._present("news_sentiment", since["news_sentiment"]):
            parts = self.bars["news_sentiment"].get(bar)
            for name in SENTIMENT_BAR_COLUMNS:
                row[name] = 0.0
            if parts:
                sums = sentiment_bar_sums(pl.concat(parts, how="vertical_relaxed"), self.iv, coin)
                if sums.height:
                    row.update({k: v for k, v in sums.row(0, named=True).items() if k != "ts"})
                    for name in SENTIMENT_BAR_COLUMNS:
                        row[name] = 0.0 if row[name] is None else row[name]
        return row

    def _book(self, row: dict, prefix: str, snaps: list[dict], close: int) -> None:
        """kimp.features.inputs._book_cols for one bar: the last snapshot's values (null when older than
        the freshness limit at the close) and the bar's mean spread and top-level imbalance."""
        if not snaps:
            return
        spreads: list[float] = []
        imbs: list[float] = []
        last: dict[str, float | None] = {}
        last_ts = None
        for s in sorted(snaps, key=lambda r: r["ts"]):
            last = s["_book"]
            last_ts = s["ts"]
            if last["spread"] is not None:
                spreads.append(last["spread"])  # type: ignore[arg-type]
            imbs.append(last["imb1"])  # type: ignore[arg-type]
        fresh = close - last_ts <= self.max_book_age_us  # type: ignore[operator]
        for name in _BOOK_LAST:
            row[f"{prefix}_ob_{name}"] = last[name] if fresh else None
        row[f"{prefix}_ob_spread_mean"] = _sum(spreads) / len(spreads) if spreads else None
        row[f"{prefix}_ob_imb1_mean"] = _sum(imbs) / len(imbs)

    @staticmethod
    def _latest(store: _AsOf, close: int, since: int, tolerance: timedelta) -> dict | None:
        """Backward as-of with a tolerance: the newest row published by the close among the window's
        rows, or None when it is older than the tolerance (an older one is never taken instead)."""
        i = store.upto(close)
        rows = store.rows
        while i > 0:
            i -= 1
            r = rows[i]
            if r["ts"] >= since:
                return r if close - r["published_at"] <= tolerance // timedelta(microseconds=1) else None
        return None

    def _onchain(self, row: dict, coin: str, bar: int, since: int) -> None:
        store = self.onchain.get(coin)
        if "onchain" in self.unusable or store is None or not any(r["ts"] >= since for r in store.rows):
            return
        close = bar + self.iv_us
        r = self._latest(store, close, since, ONCHAIN_MAX_AGE)
        for name in ONCHAIN_LEVELS:
            row[f"oc_{name}"] = _fin(r[name]) if r is not None else None
        lo = store.upto(bar - 1)
        hi = store.upto(close - 1)
        flows = [x for x in store.rows[lo:hi] if x["ts"] >= since]
        for name in ONCHAIN_FLOWS:
            row[f"oc_{name}"] = _sum(v for v in (_fin(x[name]) for x in flows) if v is not None)

    def _macro(self, row: dict, close: int, since: int) -> None:
        if "macro" in self.unusable:
            return
        max_age = MACRO_MAX_AGE // timedelta(microseconds=1)
        for series, store in self.macro.items():
            i = store.upto(close)
            rows = store.rows
            j = None
            while i > 0:
                i -= 1
                if rows[i]["ts"] >= since:
                    j = i
                    break
            if j is None or close - rows[j]["published_at"] > max_age:
                continue
            cur = rows[j]
            prev = None
            k = j
            while k > 0:
                k -= 1
                r = rows[k]
                if r["ts"] >= since and r["published_at"] < cur["published_at"]:
                    prev = r
                    break
            value = float(cur["value"])
            row[f"m_{series}"] = value
            row[f"m_{series}_pub"] = from_us(cur["published_at"])
            if prev is not None and cur["published_at"] - prev["published_at"] <= max_age:
                row[f"m_{series}_chg"] = _log(_div(value, float(prev["value"])))
