"""The streaming feature engine: raw events in, each bar's full feature vector per coin out.

State, per coin: the base frame (kimp.features.inputs: one row per bar with every raw series the
families read) of the last ``max_lookback_days``, plus the raw rows a new base row needs (the open bar's
candles, books and news; the recent FX, on-chain and macro rows an as-of join reads). At a bar close the
engine
1. computes the bar's premium rows with kimp.premium.compute_premium (FX from the same 7 days the
   ``kimchi_premium`` asset reads),
2. builds the bar's base row with kimp.features.inputs.base_frame (the batch code, told the grid start,
   the venues and the first bar of the history),
3. steps the coin's compiled feature program (kimp.streaming.compiler: the catalog's own definitions,
   computed incrementally); a feature the compiler cannot express is evaluated on the newest rows of the
   base frame instead (kimp.streaming.evaluator.TailEvaluator), with the same definition.
Each input table is restricted to the days the batch ``features`` asset reads for that day
(``lookback_days``), so the vector equals the batch row (tests/test_streaming_parity.py).

Tick refresh: on every order-book snapshot the tick-level features (catalog ``refresh == "tick"``) are
recomputed on a provisional row for the open bar whose candles are made of the books' mids seen so far
(open = first, high/low = extremes, close = latest; volume unknown). The other features keep the values of
the last closed bar.

Cold start: ``warm_up(history, until=...)`` builds the base frames from stored history (the look-back each
table declares); with no history the features warm up live, null until their look-back is covered.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from kimp.errors import MarketDataError
from kimp.features.build import feature_set_version, lookback_days
from kimp.features.inputs import SCHEMAS, base_frame, ensure_columns, kr_venues, prepare
from kimp.features.types import FeatureConfig, FeatureInputs
from kimp.market_data.schemas import CANDLES, KR_VENUES, PREMIUM, empty
from kimp.premium import FX_LOOKBACK_DAYS, compute_premium
from kimp.streaming.compiler import CompiledFeatures, compile_features
from kimp.streaming.evaluator import TailEvaluator
from kimp.streaming.events import BarClose, Event, FeatureVector, Rows
from kimp.timeutil import day_start

# Tables whose rows matter only for the bar they fall in (joined on the bar of their ``ts``).
BAR_LOCAL = ("candles", "orderbook", "news", "news_sentiment")
# Tables read as of their publication time: kept for the days the batch asset reads before a day.
AS_OF = ("fx", "onchain", "macro")


def config_for_venue(config: FeatureConfig, kr_venue: str | None) -> FeatureConfig:
    """The feature config whose "kr" venue is ``kr_venue`` (the other Korean venue feeds the spread)."""
    if kr_venue is None:
        return config
    if kr_venue not in KR_VENUES:
        raise ValueError(f"kr_venue must be one of {KR_VENUES}, got {kr_venue!r}")
    return dataclasses.replace(config, kr_venues=(kr_venue, *[v for v in KR_VENUES if v != kr_venue]))


class StreamingEngine:
    """Bar-close (and tick) feature vectors for every coin of ``config``, equal to the batch build."""

    def __init__(
        self,
        config: FeatureConfig | None = None,
        *,
        interval_s: int,
        kr_venue: str | None = None,
        tick: bool = True,
    ) -> None:
        self.config = config_for_venue(config or FeatureConfig(), kr_venue)
        self.interval_s = int(interval_s)
        self.iv = timedelta(seconds=self.interval_s)
        self.tick = tick
        self.kr_venue = self.config.kr_venues[0]
        self.feature_set = feature_set_version(self.config)
        self.lookback = lookback_days(self.config)
        self.coins = tuple(sorted(self.config.coins))
        program = compile_features(self.config, self.interval_s)
        self.names = program.names
        self.compiled = {c: CompiledFeatures(program, self.config, self.interval_s) for c in self.coins}
        self.fallback = np.array(program.fallback, dtype=np.int64)
        # features the program cannot express: evaluated on a tail of the base frame, kept only for them
        self.evaluators = (
            {c: TailEvaluator(self.config, self.interval_s) for c in self.coins} if self.fallback.size else {}
        )
        self.tick_mask = np.array([s == "tick" for s in _refresh(self.config)])
        self.keep_rows = (
            self.config.max_lookback_days * 86_400 // self.interval_s + 4 if self.evaluators else 1
        )
        self.base: dict[str, pl.DataFrame | None] = {c: None for c in self.coins}
        self.history_start: dict[str, datetime | None] = {c: None for c in self.coins}
        self.venues: dict[str, tuple[str, str | None, str | None]] = {}
        self.raw: dict[str, pl.DataFrame | None] = {t: None for t in (*BAR_LOCAL, *AS_OF)}
        self.next_bar: datetime | None = None  # open time of the first bar not yet closed
        self.last: dict[str, FeatureVector] = {}  # newest bar-close vector per coin
        self.seen: dict[str, datetime] = {}  # newest row (ts) of each table: whether the source provides it

    # ------------------------------------------------------------------ cold start
    def warm_up(self, history: FeatureInputs, *, until: datetime) -> None:
        """Base frames of every coin from stored history of bars that opened before ``until``, and the
        as-of tables' recent rows; the next bar the engine expects opens at ``until``."""
        self._check_bar(until)
        if history.premium is not None and history.premium.filter(pl.col("ts") < until).height:
            prep = prepare(history, start=until - self.iv, end=until, config=self.config)
            if prep.interval_s != self.interval_s:
                raise ValueError(
                    f"the history's bars are {prep.interval_s} s, the engine's {self.interval_s} s: warm up "
                    "from the same bar interval the feed streams"
                )
            premium = prep.tables["premium"]
            assert premium is not None
            for coin in self.coins:
                self.venues[coin] = kr_venues(premium, coin, self.config)
                base, _ = base_frame(prep, coin, end=until, config=self.config, venues=self.venues[coin])
                if base.height:
                    base = ensure_columns(base)
                    self.history_start[coin] = base["ts"][0]
                    self.compiled[coin].warm(base)
                    if self.fallback.size:
                        self.base[coin] = base.tail(self.keep_rows).rechunk()
        for table in (*BAR_LOCAL, *AS_OF):
            frame = history.table(table) if table in _input_fields() else None
            if frame is not None and frame.height:
                self.seen[table] = frame["ts"].max()  # type: ignore[assignment]
                if table in AS_OF:
                    self.raw[table] = frame
        self.next_bar = until
        self._trim_raw(until)

    # ------------------------------------------------------------------ events
    def on_event(self, event: Event) -> list[FeatureVector]:
        if isinstance(event, BarClose):
            return self.close_bar(event.ts)
        self._add_rows(event)
        if self.tick and event.table == "orderbook" and self.next_bar is not None and self.last:
            return self._tick_vectors(event)
        return []

    def run(self, events: Iterable[Event]) -> Iterable[FeatureVector]:
        for event in events:
            yield from self.on_event(event)

    def _add_rows(self, event: Rows) -> None:
        rows = event.rows
        if rows.height == 0:
            return
        have = self.raw.get(event.table)
        self.raw[event.table] = rows if have is None else pl.concat([have, rows], how="vertical_relaxed")
        latest = rows["ts"].max()
        if self.seen.get(event.table) is None or latest > self.seen[event.table]:  # type: ignore[operator]
            self.seen[event.table] = latest  # type: ignore[assignment]

    # ------------------------------------------------------------------ bar close
    def close_bar(self, ts: datetime) -> list[FeatureVector]:
        """Close every bar up to the one that opened at ``ts`` (missing bars become rows of nulls, as on the
        batch grid) and return the vector of each closed bar per coin."""
        self._check_bar(ts)
        if self.next_bar is None:
            self.next_bar = ts
        if ts < self.next_bar:
            return []  # already closed (a duplicate or late close)
        out: list[FeatureVector] = []
        while self.next_bar <= ts:
            day_end = day_start(self.next_bar.date()) + timedelta(days=1)
            end = min(ts + self.iv, day_end)  # the new bars of one UTC day (the asset's partition)
            out.extend(self._close_range(self.next_bar, end))
            self.next_bar = end
        self._trim_raw(self.next_bar)
        return out

    def _close_range(self, start: datetime, end: datetime) -> list[FeatureVector]:
        t0 = time.perf_counter()
        day = start.date()
        rows = self._base_rows(start, end, day)
        out = []
        for k in range((end - start) // self.iv):
            bar = start + k * self.iv
            for coin, frame in rows.items():
                row = frame.slice(k, 1)
                if self.fallback.size:
                    self._append(coin, row)
                vec = self._vector(coin, bar, bar + self.iv, t0, row=row)
                self.last[coin] = vec
                out.append(vec)
            t0 = time.perf_counter()
        return out

    def _tables(self, start: datetime, end: datetime, day: date, premium: pl.DataFrame) -> FeatureInputs:
        """The raw tables of bars [start, end) restricted as the batch asset of ``day`` reads them."""
        d0 = day_start(day)

        def window(table: str) -> pl.DataFrame | None:
            since = d0 - timedelta(days=self.lookback.get(table, 0))
            frame = self.raw.get(table)
            if frame is not None:
                frame = (
                    frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
                    if table in BAR_LOCAL
                    else frame.filter(pl.col("ts") >= since)
                )
            if frame is None or frame.height == 0:
                # the asset reads a table with no row in its look-back days as missing (null features),
                # one with rows elsewhere in those days as present (a bar without news has 0 news)
                seen = self.seen.get(table)
                return empty(SCHEMAS[table]) if seen is not None and seen >= since else None
            return frame

        tables = {t: window(t) for t in (*BAR_LOCAL, *AS_OF) if t in _input_fields()}
        return FeatureInputs(premium=premium, **tables)

    def _premium(self, candles: pl.DataFrame | None, day: date) -> pl.DataFrame:
        """The kimchi_premium asset's rows for these candles (FX of the same days it reads)."""
        if candles is None or candles.height == 0:
            return empty(PREMIUM)
        fx = self.raw.get("fx")
        fx = (
            fx.filter(pl.col("ts") >= day_start(day) - timedelta(days=FX_LOOKBACK_DAYS))
            if fx is not None
            else pl.DataFrame()
        )
        kr = {v: candles.filter(pl.col("venue") == v) for v in KR_VENUES}
        try:
            return compute_premium(kr, candles.filter(pl.col("venue") == "binance"), fx, day=day)
        except MarketDataError:
            return empty(PREMIUM)  # no Korean candle in these bars: a row of nulls on the grid

    def _base_rows(self, start: datetime, end: datetime, day: date) -> dict[str, pl.DataFrame]:
        candles = self.raw.get("candles")
        bar_candles = (
            candles.filter((pl.col("ts") >= start) & (pl.col("ts") < end)) if candles is not None else None
        )
        premium = self._premium(bar_candles, day)
        inputs = self._tables(start, end, day, premium)
        prep = prepare(inputs, start=start, end=end, config=self.config, interval_s=self.interval_s)
        out = {}
        for coin in self.coins:
            if coin not in self.venues:
                if premium.filter(pl.col("coin") == coin).height == 0:
                    continue  # nothing seen yet for this coin: its grid starts with its first premium bar
                self.venues[coin] = kr_venues(premium, coin, self.config)
            if self.history_start[coin] is None:
                self.history_start[coin] = start
            rows, _ = base_frame(
                prep,
                coin,
                end=end,
                config=self.config,
                venues=self.venues[coin],
                grid_start=start,
                history_start=self.history_start[coin],
            )
            out[coin] = ensure_columns(rows)
        return out

    def _append(self, coin: str, row: pl.DataFrame) -> None:
        base = self.base[coin]
        if base is None:
            self.base[coin] = row
            return
        base.vstack(_aligned(row, base.schema), in_place=True)
        if base.height > self.keep_rows + 256 or base.n_chunks() > 256:
            self.base[coin] = base.tail(self.keep_rows).rechunk()

    def _vector(
        self,
        coin: str,
        bar: datetime,
        known_at: datetime,
        t0: float,
        *,
        row: pl.DataFrame,
        tick: bool = False,
        base: pl.DataFrame | None = None,
    ) -> FeatureVector:
        """The coin's vector for this (new, or provisional when ``tick``) base row."""
        values = self.compiled[coin].step(row.row(0, named=True), commit=not tick, tick=tick)
        if self.fallback.size:
            frame = base if base is not None else self.base[coin]
            assert frame is not None
            slow = self.evaluators[coin].evaluate(frame, tick=tick, history_start=self.history_start[coin])
            values[self.fallback] = slow[self.fallback]
        if tick:
            values = np.where(self.tick_mask, values, self.last[coin].values)
        return FeatureVector(
            ts=bar,
            coin=coin,
            kr_venue=self.venues[coin][0],
            names=self.names,
            values=values,
            feature_set=self.feature_set,
            known_at=known_at,
            computed_at=datetime.now(tz=UTC),
            tick=tick,
            compute_ms=(time.perf_counter() - t0) * 1000,
        )

    # ------------------------------------------------------------------ tick refresh
    def _provisional_candles(self, bar: datetime) -> pl.DataFrame:
        """The open bar's candles as its books show them so far: the mid's first, highest, lowest and
        latest value. Volume is unknown: NaN, which no tick-level feature reads (NaN rather than null, so
        that the premium does not take the bar for a zero-volume placeholder)."""
        books = self.raw.get("orderbook")
        if books is None:
            return empty(CANDLES)
        mid = (pl.col("bid_px_1") + pl.col("ask_px_1")) / 2
        bars = (
            books.filter((pl.col("ts") >= bar) & (pl.col("ts") < bar + self.iv))
            .sort("ts")
            .select("venue", "symbol", mid=mid)
            .drop_nulls("mid")
            .group_by("venue", "symbol", maintain_order=True)
            .agg(
                open=pl.col("mid").first(),
                high=pl.col("mid").max(),
                low=pl.col("mid").min(),
                close=pl.col("mid").last(),
            )
        )
        sym = pl.col("symbol").str.split("/")
        return bars.select(
            ts=pl.lit(bar, CANDLES["ts"]),
            venue="venue",
            symbol="symbol",
            base=sym.list.get(0),
            quote=sym.list.get(1),
            interval_s=pl.lit(self.interval_s, pl.Int32),
            open="open",
            high="high",
            low="low",
            close="close",
            volume=pl.lit(float("nan")),
            quote_volume=pl.lit(float("nan")),
        )

    def _tick_vectors(self, event: Rows) -> list[FeatureVector]:
        t0 = time.perf_counter()
        bar = self.next_bar
        assert bar is not None
        if event.at >= bar + self.iv:
            return []  # a snapshot past the open bar's close: the feed closes the bar first
        candles = self.raw.get("candles")
        saved = candles
        provisional = self._provisional_candles(bar)
        self.raw["candles"] = provisional if candles is None else pl.concat([candles, provisional])
        try:
            rows = self._base_rows(bar, bar + self.iv, bar.date())
        finally:
            self.raw["candles"] = saved
        out = []
        for coin, row in rows.items():
            if coin not in self.last:
                continue
            base = self.base[coin]
            frame = None
            if self.fallback.size:
                frame = row if base is None else pl.concat([base, _aligned(row, base.schema)], rechunk=False)
            out.append(self._vector(coin, bar, event.at, t0, row=row, tick=True, base=frame))
        return out

    # ------------------------------------------------------------------ housekeeping
    def _trim_raw(self, next_bar: datetime) -> None:
        d0 = day_start(next_bar.date())
        for table in BAR_LOCAL:
            frame = self.raw.get(table)
            if frame is not None:
                self.raw[table] = frame.filter(pl.col("ts") >= next_bar - self.iv)
        for table in AS_OF:
            frame = self.raw.get(table)
            if frame is not None:
                days = max(self.lookback.get(table, 0), FX_LOOKBACK_DAYS if table == "fx" else 0) + 1
                self.raw[table] = frame.filter(pl.col("ts") >= d0 - timedelta(days=days))

    def _check_bar(self, ts: datetime) -> None:
        if ts.tzinfo is None:
            raise ValueError(f"bar times must be timezone-aware UTC, got {ts!r}")
        if int(ts.timestamp()) % self.interval_s:
            raise ValueError(f"{ts.isoformat()} is not the open of a {self.interval_s} s bar")


def _aligned(rows: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``rows`` with exactly ``schema``'s columns (a column the rows lack is null)."""
    return rows.select(
        [(pl.col(c) if c in rows.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items()]
    )


def _refresh(config: FeatureConfig) -> list[str]:
    from kimp.features.build import catalog

    return [s.refresh for s in catalog(config)]


def _input_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(FeatureInputs)}
