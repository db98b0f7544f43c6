"""Feeds: one interface (``Feed.events()``) over every way market data arrives.

- ``StoredFeed``: a stored source replayed day by day (``files``: real history; ``simulated``: the seeded
  market). As fast as it can by default, or paced at ``speed`` times real time on a clock that starts at
  the first event, which makes the simulated market a live feed (``speed=1``: real time).
- ``kimp.streaming.exchange_feed.ExchangeFeed``: live venues through ccxt (REST polling, websockets where
  ccxt supports the venue).

Events come in the order the data becomes known (see kimp.streaming.events); at one instant the as-of
tables (FX, on-chain, macro) come first, then the candles of the bar closing then, the ``BarClose``, and
last the rows that belong to the next bar (books and news stamped exactly at the close, as the batch
build's ``bar_of`` assigns them).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Protocol

import polars as pl

from kimp.features.build import lookback_days
from kimp.features.types import FeatureConfig, FeatureInputs
from kimp.market_data.schemas import KR_VENUES, VENUES
from kimp.market_data.source import MarketSource
from kimp.premium import FX_LOOKBACK_DAYS, compute_premium
from kimp.streaming.events import BarClose, Event, Rows
from kimp.timeutil import day_start

# the column that says when a row became known
KNOWN_AT = {
    "fx": "published_at",
    "onchain": "published_at",
    "macro": "published_at",
    "orderbook": "ts",
    "news": "ts",
}
_ORDER = {
    "fx": 0,
    "onchain": 0,
    "macro": 0,
    "candles": 1,
    "bar_local": 2,
    "close": 3,
    "orderbook": 4,
    "news": 4,
}


class Feed(Protocol):
    name: str
    interval_s: int

    def events(self) -> Iterator[Event]: ...


class Pacer:
    """Releases events at ``speed`` times real time: the first event's time is now, and an event known
    ``dt`` later waits ``dt / speed`` of wall time. ``speed=None`` never waits."""

    def __init__(
        self,
        speed: float | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0 (times real time), got {speed}")
        self.speed = speed
        self.sleep = sleep
        self.clock = clock
        self._origin: tuple[datetime, float] | None = None

    def wait(self, at: datetime) -> None:
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (at, self.clock())
            return
        t0, w0 = self._origin
        delay = w0 + (at - t0).total_seconds() / self.speed - self.clock()
        if delay > 0:
            self.sleep(delay)


def finest_interval(candles: pl.DataFrame) -> int | None:
    """The bar interval the premium (and so the feature grid) is built at: the finest Korean-venue one."""
    kr = candles.filter(pl.col("venue").is_in(KR_VENUES))
    return int(kr["interval_s"].min()) if kr.height else None  # type: ignore[arg-type]


def day_tables(source: MarketSource, day: date) -> dict[str, pl.DataFrame]:
    """Every raw table a source has for one UTC day (candles of all venues concatenated)."""
    candles = [source.candles(v, day) for v in VENUES if source.provides("candles", v)]
    tables = {"candles": pl.concat(candles, how="vertical_relaxed") if candles else pl.DataFrame()}
    for name in ("fx", "orderbook", "onchain", "macro", "news"):
        if source.provides(name):
            tables[name] = getattr(source, name)(day)
    return {k: v for k, v in tables.items() if v.height}


def day_events(
    tables: dict[str, pl.DataFrame],
    *,
    day: date,
    interval_s: int,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshots: bool = True,
) -> Iterator[Event]:
    """The events of one day's tables, in the order they became known, with a ``BarClose`` for every bar
    of the day in [start, end) (bars without candles too: the batch grid has them).

    ``snapshots=False`` hands each bar's books and news over in one batch just before its close (enough for
    bar-close vectors, and much cheaper than one event per snapshot).
    """
    iv = timedelta(seconds=interval_s)
    lo = max(day_start(day), start) if start else day_start(day)
    hi = min(day_start(day) + timedelta(days=1), end) if end else day_start(day) + timedelta(days=1)
    queues: list[list[tuple[datetime, int, int, Event]]] = []
    seq = 0

    def add(table: str, frame: pl.DataFrame, known: pl.Expr, order: int) -> None:
        nonlocal seq
        frame = frame.with_columns(_known=known).sort("_known", maintain_order=True)
        items = []
        for part in frame.partition_by("_known", maintain_order=True):
            at = part["_known"][0]
            items.append((at, order, seq, Rows(table, part.drop("_known"), at)))
            seq += 1
        queues.append(items)

    candles = tables.get("candles")
    if candles is not None:
        bars = candles.filter(
            (pl.col("interval_s") == interval_s) & (pl.col("ts") >= lo) & (pl.col("ts") < hi)
        )
        add("candles", bars, pl.col("ts") + pl.duration(seconds=interval_s), _ORDER["candles"])
    for table, column in KNOWN_AT.items():
        frame = tables.get(table)
        if frame is None or frame.height == 0:
            continue
        bar_local = table in ("orderbook", "news")
        if bar_local:
            frame = frame.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        else:  # known by ``lo``: part of the history the engine warmed up from (stored_history)
            frame = frame.filter((pl.col(column) > lo) & (pl.col(column) <= hi))
        if bar_local and not snapshots:
            epoch = pl.col("ts").dt.epoch("us") // (interval_s * 1_000_000) * (interval_s * 1_000_000)
            close = pl.from_epoch(epoch + interval_s * 1_000_000, time_unit="us").dt.replace_time_zone("UTC")
            add(table, frame, close, _ORDER["bar_local"])
        else:
            add(table, frame, pl.col(column), _ORDER[table])
    closes = []
    bar = lo
    while bar < hi:
        closes.append((bar + iv, _ORDER["close"], seq, BarClose(bar, interval_s)))
        seq += 1
        bar += iv
    queues.append(closes)
    for _at, _order, _seq, event in heapq.merge(*queues, key=lambda x: (x[0], x[1], x[2])):
        yield event


class StoredFeed:
    """A stored source (``simulated`` or ``files``) replayed from ``start`` to ``end`` (open-ended: day after
    day). Each event is released when its time comes on the pacer's clock."""

    def __init__(
        self,
        source: MarketSource,
        *,
        start: datetime,
        end: datetime | None = None,
        interval_s: int | None = None,
        speed: float | None = None,
        snapshots: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise ValueError("start and end must be timezone-aware UTC datetimes")
        if end is not None and end <= start:
            raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
        self.source = source
        self.name = getattr(source, "name", type(source).__name__)
        self.start, self.end = start, end
        self.snapshots = snapshots
        self.pacer = Pacer(speed, sleep, clock)
        self._interval_s = interval_s

    @property
    def interval_s(self) -> int:
        if self._interval_s is None:
            candles = day_tables(self.source, self.start.date()).get("candles")
            found = finest_interval(candles) if candles is not None else None
            if found is None:
                raise ValueError(
                    f"{self.name}: no Korean-venue candles on {self.start.date()}, so the bar interval is "
                    "unknown; pass interval_s or start on a day with data"
                )
            self._interval_s = found
        return self._interval_s

    def events(self) -> Iterator[Event]:
        iv = self.interval_s
        day = self.start.date()
        carried: dict[str, pl.DataFrame] = {}  # as-of rows of earlier days published after their day
        while self.end is None or day_start(day) < self.end:
            tables = day_tables(self.source, day)
            for table, late in carried.items():
                tables[table] = (
                    pl.concat([late, tables[table]], how="vertical_relaxed") if table in tables else late
                )
            day_end = day_start(day) + timedelta(days=1)
            carried = {
                t: tables[t].filter(pl.col(KNOWN_AT[t]) > day_end)
                for t in ("fx", "onchain", "macro")
                if t in tables and tables[t].filter(pl.col(KNOWN_AT[t]) > day_end).height
            }
            for event in day_events(
                tables, day=day, interval_s=iv, start=self.start, end=self.end, snapshots=self.snapshots
            ):
                self.pacer.wait(event.at)
                yield event
            day += timedelta(days=1)


def stored_history(
    source: MarketSource, *, until: datetime, interval_s: int, config: FeatureConfig | None = None
) -> FeatureInputs:
    """What a source had published by ``until``, over the days the feature build reads before it: the
    engine's cold start (``StreamingEngine.warm_up``). The premium is computed per day as the
    ``kimchi_premium`` asset does (FX of the 7 days before each day); a feed started at ``until``
    (``StoredFeed``) emits exactly what comes after."""
    config = config or FeatureConfig()
    back = max(lookback_days(config).values())
    first = until.date() - timedelta(days=back)
    days = [first + timedelta(days=i) for i in range((until.date() - first).days + 1)]
    fx_days = [first - timedelta(days=i) for i in range(FX_LOOKBACK_DAYS, 0, -1)]
    loaded = {d: day_tables(source, d) for d in days}
    fx_all = [day_tables_fx(source, d) for d in fx_days] + [t.get("fx") for t in loaded.values()]
    fx_all = [f for f in fx_all if f is not None and f.height]
    parts: dict[str, list[pl.DataFrame]] = {}
    for d, tables in loaded.items():
        candles = tables.get("candles")
        if candles is not None:
            candles = candles.filter(pl.col("ts") + pl.duration(seconds=pl.col("interval_s")) <= until)
            fx = pl.concat(fx_all, how="vertical_relaxed") if fx_all else pl.DataFrame()
            if fx.height:
                fx = fx.filter(
                    (pl.col("ts") >= day_start(d) - timedelta(days=FX_LOOKBACK_DAYS))
                    & (pl.col("ts") < day_start(d) + timedelta(days=1))
                )
            kr = {v: candles.filter(pl.col("venue") == v) for v in KR_VENUES}
            if any(f.height for f in kr.values()):
                premium = compute_premium(kr, candles.filter(pl.col("venue") == "binance"), fx, day=d)
                parts.setdefault("premium", []).append(premium)
            parts.setdefault("candles", []).append(candles)
        for table, column in KNOWN_AT.items():
            frame = tables.get(table)
            if frame is None:
                continue
            known = pl.col(column) < until if table in ("orderbook", "news") else pl.col(column) <= until
            parts.setdefault(table, []).append(frame.filter(known))
    tables = {k: pl.concat(v, how="vertical_relaxed") for k, v in parts.items() if v}
    tables.setdefault(
        "premium", None
    )  # nothing published before ``until``: a cold start, features warm up live
    return FeatureInputs(**tables)


def day_tables_fx(source: MarketSource, day: date) -> pl.DataFrame | None:
    return source.fx(day) if source.provides("fx") else None


def batch_inputs(source: MarketSource, day: date, config: FeatureConfig | None = None) -> FeatureInputs:
    """The inputs the batch ``features`` asset reads for ``day`` (each table's look-back days, the premium
    per day from the FX of the 7 days before it): the reference the parity tests compare against."""
    config = config or FeatureConfig()
    back = lookback_days(config)
    first = day - timedelta(days=max(back.values()) + FX_LOOKBACK_DAYS)
    loaded = {
        first + timedelta(days=i): day_tables(source, first + timedelta(days=i))
        for i in range((day - first).days + 1)
    }

    def span(table: str, lo: date, hi: date) -> pl.DataFrame | None:
        frames = [t[table] for d, t in loaded.items() if lo <= d <= hi and table in t]
        return pl.concat(frames, how="vertical_relaxed") if frames else None

    premium = []
    for i in range(back["premium"], -1, -1):
        d = day - timedelta(days=i)
        candles = loaded[d].get("candles")
        if candles is None:
            continue
        kr = {v: candles.filter(pl.col("venue") == v) for v in KR_VENUES}
        if any(f.height for f in kr.values()):
            fx = span("fx", d - timedelta(days=FX_LOOKBACK_DAYS), d)
            binance = candles.filter(pl.col("venue") == "binance")
            premium.append(compute_premium(kr, binance, fx if fx is not None else pl.DataFrame(), day=d))
    tables = {t: span(t, day - timedelta(days=back.get(t, 0)), day) for t in ("candles", *KNOWN_AT)}
    return FeatureInputs(premium=pl.concat(premium) if premium else None, **tables)
