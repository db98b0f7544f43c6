"""FilesSource: real history from a folder of files (searched recursively). See docs/data-sources.md."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn

import polars as pl

from kimp.errors import MarketDataError
from kimp.market_data.files.discovery import Catalog, FileSpec, discover
from kimp.market_data.files.formats import (
    CANDLE_VALUE_COLS,
    FX_VALUE_COLS,
    read_candles,
    read_fx,
    read_news,
    read_orderbook,
)
from kimp.market_data.files.parsing import FileProblem
from kimp.market_data.files.validate import (
    PRICE_COLS,
    check_interval,
    check_order,
    dedupe,
    mark_price_defects,
)
from kimp.market_data.schemas import (
    BOOK_LEVELS,
    CANDLES,
    FX,
    MACRO,
    NEWS,
    ONCHAIN,
    ORDERBOOK,
    conform,
    empty,
)
from kimp.market_data.source import Table
from kimp.timeutil import in_day, parse_day

log = logging.getLogger(__name__)

_BOOK_VALUE_COLS = [
    f"{side}_{what}_{i}"
    for side in ("bid", "ask")
    for what in ("px", "sz")
    for i in range(1, BOOK_LEVELS + 1)
]

# ------------------------------------------------------------------------------------------ per-file cache
# Parsed and validated frames (or the structural problem found) per file, keyed by the file's spec, mtime and
# size, shared by every FilesSource in the process: 30 partition calls parse each file once.

_CACHE_MAX = 256
_cache: OrderedDict[tuple[FileSpec, int, int], pl.DataFrame | FileProblem] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0  # = files parsed


_stats = CacheStats()


def cache_stats() -> CacheStats:
    """Hits and misses (parses) of the per-file cache since the last clear_cache()."""
    return CacheStats(_stats.hits, _stats.misses)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _stats.hits = _stats.misses = 0


def _file_key(spec: FileSpec) -> tuple[FileSpec, int, int]:
    try:
        st = spec.path.stat()
    except FileNotFoundError as e:
        raise FileProblem(spec.label, "the file has disappeared since discovery", "the file to exist") from e
    return (spec, st.st_mtime_ns, st.st_size)


def _copy(p: FileProblem) -> FileProblem:
    return FileProblem(p.file, p.problem, p.expected, p.rows)


def load_file(spec: FileSpec, parse: Callable[[FileSpec], pl.DataFrame]) -> pl.DataFrame:
    """The parsed frame of ``spec`` from the cache, parsing it on a miss; a cached FileProblem is raised again."""
    key = _file_key(spec)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            _stats.hits += 1
    if hit is not None:
        if isinstance(hit, FileProblem):
            raise _copy(hit)
        return hit
    result: pl.DataFrame | FileProblem
    try:
        result = parse(spec)
    except FileProblem as e:
        result = e
    with _cache_lock:
        _stats.misses += 1
        for stale in [k for k in _cache if k[0] == spec and k != key]:
            del _cache[stale]
        _cache[key] = result
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    if isinstance(result, FileProblem):
        raise _copy(result)
    return result


# ------------------------------------------------------------------------------------------ per-file parsing


def parse_candle_file(spec: FileSpec) -> pl.DataFrame:
    raw = read_candles(spec)
    frame = check_order(spec, raw)
    check_interval(spec, frame)
    frame = mark_price_defects(frame, PRICE_COLS, volumes=("volume", "quote_volume"))
    frame = frame.with_columns(pl.lit(spec.label).alias("file"))
    return dedupe(
        frame,
        keys=["ts"],
        values=CANDLE_VALUE_COLS,
        what=f"{spec.label} (known defect, e.g. CryptoDataDownload)",
    )


def parse_fx_file(spec: FileSpec) -> pl.DataFrame:
    raw = read_fx(spec)
    frame = check_order(spec, raw)
    check_interval(spec, frame)
    frame = mark_price_defects(frame, ["close"], optional_prices=("open", "high", "low"))
    frame = frame.with_columns(
        pl.lit(spec.label).alias("file"), pl.lit(f"files:{spec.path.name}").alias("source")
    )
    return dedupe(frame, keys=["ts"], values=FX_VALUE_COLS, what=spec.label)


def parse_orderbook_file(spec: FileSpec) -> pl.DataFrame:
    raw = read_orderbook(spec)
    frame = check_order(spec, raw)
    px = [c for c in _BOOK_VALUE_COLS if "_px_" in c]
    sz = [c for c in _BOOK_VALUE_COLS if "_sz_" in c]
    frame = mark_price_defects(frame, ["bid_px_1", "ask_px_1"], optional_prices=px[1:], volumes=sz)
    frame = frame.with_columns(
        pl.lit(spec.venue).alias("venue"),
        pl.lit(spec.symbol).alias("symbol"),
        pl.lit(spec.label).alias("file"),
    )
    return dedupe(frame, keys=["ts"], values=_BOOK_VALUE_COLS, what=spec.label)


def parse_news_file(spec: FileSpec) -> pl.DataFrame:
    raw = read_news(spec)
    frame = check_order(spec, raw)
    return frame.with_columns(
        pl.lit(spec.label).alias("file"), pl.lit(None, dtype=pl.String).alias("problem")
    )


# ------------------------------------------------------------------------------------------ the source


class FilesSource:
    """Real history from the files under ``data_dir`` (see docs/data-sources.md for names and formats).

    Every method returns one UTC day with exactly the schema of its table. Bad input raises MarketDataError
    naming the source, the day, the file, the offending rows and what was expected.
    """

    name = "files"

    def __init__(self, data_dir: str | os.PathLike[str], *, error_source: str = "files") -> None:
        self.data_dir = Path(data_dir)
        self._err_source = error_source
        if not self.data_dir.is_dir():
            raise MarketDataError(
                source=error_source,
                partition=None,
                problem=f"data folder {str(self.data_dir)!r} does not exist or is not a folder",
                expected="KIMP_DATA_DIR pointing at a folder of candle / USDKRW_daily files",
            )
        self.catalog: Catalog = discover(self.data_dir)
        # series (all files of one venue/symbol/interval) -> (file keys it was built from, frame)
        self._series_cache: dict[tuple[FileSpec, ...], tuple[tuple[object, ...], pl.DataFrame]] = {}
        log.debug(
            "files source %s: candles %s, fx %d, orderbook %d, news %d, ignored %d",
            self.data_dir,
            {v: sorted(k) for v, k in self.catalog.candles.items()},
            len(self.catalog.fx),
            len(self.catalog.orderbook),
            len(self.catalog.news),
            len(self.catalog.ignored),
        )

    # -------------------------------------------------------------------------------------- protocol

    def provides(self, table: Table, venue: str | None = None) -> bool:
        if table == "candles":
            return bool(self.catalog.candles) if venue is None else venue in self.catalog.candles
        if table == "fx":
            return bool(self.catalog.fx)
        if table == "orderbook":
            return any(venue is None or s.venue == venue for s in self.catalog.orderbook)
        if table == "news":
            return bool(self.catalog.news)
        return False

    def candles(self, venue: str, day: date) -> pl.DataFrame:
        """Candles of every symbol and interval the files hold for ``venue`` with bar open time on ``day``."""
        d = parse_day(day)
        groups = self.catalog.candles.get(venue)
        if not groups:
            return empty(CANDLES)
        parts = []
        for (symbol, interval_s), specs in groups.items():
            series = self._series(specs, d, parse_candle_file, keys=["ts"], values=CANDLE_VALUE_COLS)
            rows = in_day(series, d)
            parts.append(
                rows.with_columns(
                    pl.lit(venue).alias("venue"),
                    pl.lit(symbol).alias("symbol"),
                    pl.lit(specs[0].base).alias("base"),
                    pl.lit(specs[0].quote).alias("quote"),
                    pl.lit(interval_s, dtype=pl.Int32).alias("interval_s"),
                )
            )
        frame = pl.concat(parts, how="diagonal_relaxed") if parts else empty(CANDLES)
        self._raise_row_defects(
            frame,
            d,
            what=f"{venue} candles",
            expected="finite, positive open/high/low/close, non-negative volume, one value per timestamp",
            show=["file", "line", "symbol", "ts", "open", "high", "low", "close", "volume", "problem"],
        )
        return conform(frame.sort("symbol", "interval_s", "ts"), CANDLES, table="candles")

    def fx(self, day: date) -> pl.DataFrame:
        """Daily USD/KRW closes dated ``day`` (ts = day 00:00 UTC), published at 00:00 UTC of day + 1."""
        d = parse_day(day)
        if not self.catalog.fx:
            return empty(FX)
        series = self._series(self.catalog.fx, d, parse_fx_file, keys=["ts"], values=FX_VALUE_COLS)
        rows = in_day(series, d)
        self._raise_row_defects(
            rows,
            d,
            what="USD/KRW",
            expected="a finite, positive close (and open/high/low when given), one value per date",
            show=["file", "line", "ts", "open", "high", "low", "close", "problem"],
        )
        frame = rows.with_columns(
            pl.lit("daily_close").alias("series"),
            pl.lit(86_400, dtype=pl.Int32).alias("interval_s"),
            # A daily value dated D is known only once D is over: published at 00:00 UTC of D+1.
            (pl.col("ts") + pl.duration(days=1)).alias("published_at"),
        )
        return conform(frame.sort("ts"), FX, table="fx")

    def orderbook(self, day: date) -> pl.DataFrame:
        d = parse_day(day)
        if not self.catalog.orderbook:
            return empty(ORDERBOOK)
        parts = []
        for spec in self.catalog.orderbook:
            try:
                parts.append(in_day(load_file(spec, parse_orderbook_file), d))
            except FileProblem as e:
                self._fail(d, e)
        frame = pl.concat(parts, how="diagonal_relaxed")
        frame = dedupe(
            frame.sort("ts", maintain_order=True),
            keys=["venue", "symbol", "ts"],
            values=_BOOK_VALUE_COLS,
            what="order-book files",
            level=logging.DEBUG,
        )
        self._raise_row_defects(
            frame,
            d,
            what="order books",
            expected="positive prices, non-negative sizes, one snapshot per venue/symbol/timestamp",
            show=["file", "line", "ts", "bid_px_1", "bid_sz_1", "ask_px_1", "ask_sz_1", "problem"],
        )
        return conform(frame.sort("venue", "symbol", "ts"), ORDERBOOK, table="orderbook")

    def onchain(self, day: date) -> pl.DataFrame:
        return empty(ONCHAIN)

    def macro(self, day: date) -> pl.DataFrame:
        return empty(MACRO)

    def news(self, day: date) -> pl.DataFrame:
        d = parse_day(day)
        if not self.catalog.news:
            return empty(NEWS)
        parts = []
        for spec in self.catalog.news:
            try:
                parts.append(in_day(load_file(spec, parse_news_file), d))
            except FileProblem as e:
                self._fail(d, e)
        frame = pl.concat(parts, how="diagonal_relaxed")
        return conform(frame.sort("ts", maintain_order=True), NEWS, table="news")

    # -------------------------------------------------------------------------------------- extras

    def coverage(self, venue: str) -> dict[str, tuple[datetime, datetime]]:
        """For each symbol the files hold for ``venue``: (first bar open, last bar open), over all intervals.

        Lets the caller tell "no rows that day" from "the files do not cover that day".
        """
        out: dict[str, tuple[datetime, datetime]] = {}
        for (symbol, _interval), (lo, hi) in self.coverage_by_interval(venue).items():
            if symbol in out:
                lo, hi = min(lo, out[symbol][0]), max(hi, out[symbol][1])
            out[symbol] = (lo, hi)
        return out

    def coverage_by_interval(self, venue: str) -> dict[tuple[str, int], tuple[datetime, datetime]]:
        """Like coverage(), per (symbol, interval_s)."""
        out: dict[tuple[str, int], tuple[datetime, datetime]] = {}
        for key, specs in self.catalog.candles.get(venue, {}).items():
            series = self._series(specs, None, parse_candle_file, keys=["ts"], values=CANDLE_VALUE_COLS)
            if series.height:
                lo, hi = series["ts"].min(), series["ts"].max()
                assert isinstance(lo, datetime) and isinstance(hi, datetime)
                out[key] = (lo, hi)
        return out

    def fx_coverage(self) -> tuple[datetime, datetime] | None:
        """(first, last) value date of the USD/KRW files, or None when there are none."""
        if not self.catalog.fx:
            return None
        series = self._series(self.catalog.fx, None, parse_fx_file, keys=["ts"], values=FX_VALUE_COLS)
        if series.height == 0:
            return None
        lo, hi = series["ts"].min(), series["ts"].max()
        assert isinstance(lo, datetime) and isinstance(hi, datetime)
        return lo, hi

    # -------------------------------------------------------------------------------------- internals

    def _series(
        self,
        specs: Sequence[FileSpec],
        day: date | None,
        parse: Callable[[FileSpec], pl.DataFrame],
        *,
        keys: list[str],
        values: Sequence[str],
    ) -> pl.DataFrame:
        """All files of one series concatenated in time order; identical overlaps dropped, conflicts marked."""
        try:
            file_keys = tuple(_file_key(s) for s in specs)
            hit = self._series_cache.get(tuple(specs))
            if hit is not None and hit[0] == file_keys:
                # Count as cache hits for every file of the series (nothing re-parsed).
                with _cache_lock:
                    _stats.hits += len(specs)
                return hit[1]
            frames = [load_file(s, parse) for s in specs]
        except FileProblem as e:
            self._fail(day, e)
        if len(frames) == 1:
            series = frames[0]
        else:
            series = dedupe(
                pl.concat(frames, how="diagonal_relaxed").sort("ts", maintain_order=True),
                keys=keys,
                values=values,
                what=f"overlap between {[s.label for s in specs]}",
                level=logging.DEBUG,
            )
        self._series_cache[tuple(specs)] = (file_keys, series)
        return series

    def _fail(self, day: date | None, e: FileProblem) -> NoReturn:
        raise MarketDataError(
            source=self._err_source,
            partition=day,
            problem=f"file {e.file}: {e.problem}",
            expected=e.expected,
            rows=e.rows,
        ) from e

    def _raise_row_defects(
        self, frame: pl.DataFrame, day: date, *, what: str, expected: str, show: list[str]
    ) -> None:
        if "problem" not in frame.columns:
            return
        bad = frame.filter(pl.col("problem").is_not_null())
        if bad.height == 0:
            return
        files = sorted(bad["file"].unique().to_list())
        kinds = sorted(bad["problem"].unique().to_list())
        lines = bad.sort("file", "line")["line"].head(20).to_list()
        raise MarketDataError(
            source=self._err_source,
            partition=day,
            problem=(
                f"{bad.height} bad {what} row(s) on {day} in file(s) {', '.join(files)} "
                f"(lines {lines}{' ...' if bad.height > 20 else ''}): {'; '.join(kinds)}"
            ),
            expected=expected,
            rows=bad.sort("file", "line").select([c for c in show if c in bad.columns]),
        )
