"""The streaming feature engine: raw events in, each bar's full feature vector per coin out.

State: the raw rows a new base row needs (kimp.streaming.rows.BaseRows: the open bar's candles, books and
news as records; the FX, on-chain and macro rows an as-of lookup reads, sorted by publication time) and,
per coin, the compiled feature program's state. At a bar close the engine
1. computes the bar's premium rows (kimp.premium.compute_premium's rules, FX from the same 7 days the
   ``kimchi_premium`` asset reads),
2. builds the bar's base row (the row kimp.features.inputs.base_frame gives that bar: the batch code's
   rules applied to the bar's records, kimp.streaming.rows),
3. steps the coin's compiled feature program (kimp.streaming.compiler: the catalog's own definitions,
   computed incrementally); a feature the compiler cannot express is evaluated on the newest rows of the
   base frame instead (kimp.streaming.evaluator.TailEvaluator), with the same definition.
Each input table is restricted to the days the batch ``features`` asset reads for that day
(``lookback_days``), so the vector equals the batch row (tests/test_streaming_parity.py). No polars frame is
built per bar (that cost 90-120 ms of CPU a close for two coins); the history is built once, at warm-up,
by the batch code itself.

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
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from kimp.features.build import feature_set_version, lookback_days
from kimp.features.inputs import base_frame, ensure_columns, kr_venues, prepare
from kimp.features.types import FeatureConfig, FeatureInputs
from kimp.market_data.schemas import KR_VENUES, PREMIUM, empty
from kimp.streaming.compiler import CompiledFeatures, compile_features
from kimp.streaming.evaluator import TailEvaluator
from kimp.streaming.events import BarClose, Event, FeatureVector, Rows
from kimp.streaming.rows import AS_OF, BAR_LOCAL, BaseRows, from_us, records, to_us
from kimp.timeutil import day_start


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
        premium_history: timedelta | None = None,
    ) -> None:
        """``premium_history``: how far back bar_premium keeps the closed bars' premium rows, warm-up bars
        included (the live loop's ``last_move`` reads the bar one horizon back); default one bar."""
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
        self.rows = BaseRows(self.config, self.interval_s, self.lookback)
        self._premium: dict[int, dict] = {}  # premium rows of the newest closed bars (bar_premium)
        self.premium_keep_us = max(premium_history or self.iv, self.iv) // timedelta(microseconds=1)
        self.next_bar: datetime | None = None  # open time of the first bar not yet closed
        self.last: dict[str, FeatureVector] = {}  # newest bar-close vector per coin

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
            self._keep_premium(premium, until)
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
                if table in AS_OF:
                    self.rows.add(table, frame)
                else:
                    self.rows.see(table, frame["ts"].max())  # type: ignore[arg-type]
        self.next_bar = until
        self.rows.trim(to_us(until))

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
        self.rows.add(event.table, event.rows)

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
        # bar_premium: this close's bars and those of premium_history before (by default the bar before)
        held = to_us(self.next_bar) - self.premium_keep_us
        for b in [b for b in self._premium if b < held]:
            del self._premium[b]
        while self.next_bar <= ts:
            day_end = day_start(self.next_bar.date()) + timedelta(days=1)
            end = min(ts + self.iv, day_end)  # the new bars of one UTC day (the asset's partition)
            out.extend(self._close_range(self.next_bar, end))
            self.next_bar = end
        self.rows.trim(to_us(self.next_bar))
        return out

    def _close_range(self, start: datetime, end: datetime) -> list[FeatureVector]:
        out = []
        for k in range((end - start) // self.iv):
            t0 = time.perf_counter()
            bar = start + k * self.iv
            for coin, row in self._base_rows(to_us(bar)).items():
                if self.fallback.size:
                    self._append(coin, row)
                vec = self._vector(coin, bar, bar + self.iv, t0, row=row)
                self.last[coin] = vec
                out.append(vec)
        return out

    def _base_rows(self, bar: int, *, provisional: bool = False) -> dict[str, dict[str, object]]:
        """Each coin's base row for the bar that opened at ``bar`` (epoch us); ``provisional``: the open
        bar, its candles made of the books seen so far."""
        candles = list(self.rows.bars["candles"].get(bar, ()))
        if provisional:
            candles += self.rows.provisional_candles(bar)
        premium = self.rows.premium(bar, candles)
        if not provisional:
            self._premium[bar] = premium
        out = {}
        for coin in self.coins:
            if coin not in self.venues:
                if not any(c == coin for c, _ in premium):
                    continue  # nothing seen yet for this coin: its grid starts with its first premium bar
                self.venues[coin] = self.rows.venues(premium, coin)
            if self.history_start[coin] is None:
                self.history_start[coin] = from_us(bar)
            start = self.history_start[coin]
            assert start is not None
            out[coin] = self.rows.row(bar, coin, self.venues[coin], premium, candles, to_us(start))
        return out

    def _append(self, coin: str, row: dict[str, object]) -> None:
        base = self.base[coin]
        frame = _row_frame(row, base)
        if base is None:
            self.base[coin] = frame
            return
        base.vstack(frame, in_place=True)
        if base.height > self.keep_rows + 256 or base.n_chunks() > 256:
            self.base[coin] = base.tail(self.keep_rows).rechunk()

    def _vector(
        self,
        coin: str,
        bar: datetime,
        known_at: datetime,
        t0: float,
        *,
        row: dict[str, object],
        tick: bool = False,
        base: pl.DataFrame | None = None,
    ) -> FeatureVector:
        """The coin's vector for this (new, or provisional when ``tick``) base row."""
        values = self.compiled[coin].step(row, commit=not tick, tick=tick)
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

    def _keep_premium(self, premium: pl.DataFrame, until: datetime) -> None:
        """The history's premium rows of the last ``premium_history`` before ``until``, as the closes keep
        theirs (bar_premium reads warm-up bars like live ones)."""
        since = until - timedelta(microseconds=self.premium_keep_us)
        tail = premium.filter(
            (pl.col("ts") >= since)
            & (pl.col("ts") < until)
            & (pl.col("interval_s") == self.interval_s)
            & pl.col("coin").is_in(list(self.coins))
        ).sort("ts")
        for row in records(tail):
            bar, key = row.pop("ts"), (row.pop("coin"), row.pop("kr_venue"))
            row.pop("interval_s")
            self._premium.setdefault(bar, {})[key] = row

    def bar_premium(self, bars: Iterable[datetime]) -> pl.DataFrame:
        """The premium rows (PREMIUM schema: the ``kimchi_premium`` asset's rows, as prepare() leaves them)
        the engine computed for the bars of its newest close (and ``premium_history`` before it, warm-up
        bars included) among ``bars``: for the ``bars`` table of the time-series store and the live loop's
        ``last_move``, without computing them again."""
        rows = []
        for bar in sorted(bars):
            for (coin, venue), p in self._premium.get(to_us(bar), {}).items():
                rows.append(
                    {"ts": to_us(bar), "coin": coin, "kr_venue": venue, "interval_s": self.interval_s, **p}
                )
        if not rows:
            return empty(PREMIUM)
        return _frame(rows, PREMIUM).sort("coin", "kr_venue", "ts")  # type: ignore[union-attr]

    # ------------------------------------------------------------------ tick refresh
    def _tick_vectors(self, event: Rows) -> list[FeatureVector]:
        """The open bar's provisional row: its candles are the books' mids seen so far (open = first,
        high/low = extremes, close = latest; volume unknown, NaN, which no tick-level feature reads: NaN
        rather than null, so that the premium does not take the bar for a zero-volume placeholder)."""
        t0 = time.perf_counter()
        bar = self.next_bar
        assert bar is not None
        if event.at >= bar + self.iv:
            return []  # a snapshot past the open bar's close: the feed closes the bar first
        rows = self._base_rows(to_us(bar), provisional=True)
        out = []
        for coin, row in rows.items():
            if coin not in self.last:
                continue
            base = self.base[coin]
            frame = None
            if self.fallback.size:
                new = _row_frame(row, base)
                frame = new if base is None else pl.concat([base, new], rechunk=False)
            out.append(self._vector(coin, bar, event.at, t0, row=row, tick=True, base=frame))
        return out

    # ------------------------------------------------------------------ housekeeping
    def _check_bar(self, ts: datetime) -> None:
        if ts.tzinfo is None:
            raise ValueError(f"bar times must be timezone-aware UTC, got {ts!r}")
        if int(ts.timestamp()) % self.interval_s:
            raise ValueError(f"{ts.isoformat()} is not the open of a {self.interval_s} s bar")


def _frame(records: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """Records (datetimes as epoch us) as a frame of ``schema``; None without records."""
    if not records:
        return None
    data = {c: [r.get(c) for r in records] for c in schema}
    frame = pl.DataFrame(
        data,
        schema={c: (pl.Int64 if isinstance(t, pl.Datetime) else t) for c, t in schema.items()},
    )
    return frame.with_columns(
        [
            pl.from_epoch(c, time_unit="us").dt.replace_time_zone("UTC")
            for c, t in schema.items()
            if isinstance(t, pl.Datetime)
        ]
    )


def _row_frame(row: dict[str, object], like: pl.DataFrame | None) -> pl.DataFrame:
    """A base row as a one-row frame (for the tail evaluator), with ``like``'s columns when given."""
    frame = pl.DataFrame([row])
    return ensure_columns(frame) if like is None else _aligned(frame, like.schema)


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
