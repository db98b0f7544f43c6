"""The live loop: feed -> streaming features -> online store -> prediction (the champion) -> signal -> online
store (and PostgreSQL when ``KIMP_PG_URL`` is set: bars, predictions, signals, and with ``--record`` the
served vectors).

At every bar close the engine gives each coin's feature vector; the loop writes them to the online store,
scores all coins in one call of the champion (with the bars a sequence member needs before each row), turns
each coin's ``p_down - p_up`` into a target position by the backtest's prediction rule
(kimp.backtest.signals.prediction_step, its state carried bar to bar exactly as the daily backtests carry it,
with prediction_signals' defaults), and writes the signal. The time from the close reaching the loop to the
last signal written is the bar-to-signal latency (metric ``kimp_bar_to_signal_seconds``). Tick refreshes
(order-book snapshots) update the stored vectors only; signals are per bar, as in the backtest.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from kimp.backtest.signals import prediction_signals, prediction_state, prediction_step
from kimp.models.base import WalkForwardConfig
from kimp.models.labels import LAST_MOVE, last_move, premium_labels, rule_config
from kimp.serving.champion import ChampionHolder, LoadedModel, NoModelError, label_rule_of
from kimp.serving.metrics import Metrics
from kimp.serving.service import model_frame
from kimp.streaming.events import BarClose, Event, FeatureVector
from kimp.streaming.online import OnlineStore, Signal

log = logging.getLogger("kimp.serving.live")
# The premium rows the engine keeps for last_move: the bar one horizon back, for the longest horizon a
# model may have (WalkForwardConfig: 24 hours).
PREMIUM_HISTORY = timedelta(hours=24)


@dataclass(frozen=True)
class PredictionRule:
    """The backtest's prediction rule and its parameters (defaults: those of prediction_signals)."""

    threshold: float
    exit_threshold: float | None
    hold_minutes: int | None
    size_step: float

    @classmethod
    def backtest_defaults(cls) -> PredictionRule:
        p = inspect.signature(prediction_signals).parameters
        return cls(
            threshold=p["threshold"].default,
            exit_threshold=p["exit_threshold"].default,
            hold_minutes=p["hold_minutes"].default,
            size_step=p["size_step"].default,
        )

    def step(self, edge: float, *, horizon: int, interval_s: int, state: np.ndarray) -> float:
        """The target of one bar (``state``: prediction_state(), updated in place)."""
        exit_ = self.threshold / 2 if self.exit_threshold is None else self.exit_threshold
        hold_minutes = horizon if self.hold_minutes is None else self.hold_minutes
        hold = -(-hold_minutes * 60 // interval_s)
        edge = 0.0 if not math.isfinite(edge) else edge
        out = prediction_step(
            np.array([edge]), max(self.threshold, 1e-12), exit_, hold, self.size_step, state
        )
        return float(out[0])


@dataclass
class LoopStats:
    bars: int = 0
    signals: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # bar close -> signal readable
    cpu_ms: list[float] = field(default_factory=list)  # CPU time of the same (what load does not inflate)
    engine_cpu_ms: list[float] = field(default_factory=list)  # of which the feature engine's bar close
    last_bar: datetime | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    warm_up_s: float | None = None
    running: bool = False

    def as_dict(self) -> dict[str, Any]:
        lat = np.array(self.latencies_ms[-1000:]) if self.latencies_ms else np.array([np.nan])
        return {
            "running": self.running,
            "bars": self.bars,
            "signals": self.signals,
            "errors": self.errors,
            "last_bar": self.last_bar.isoformat() if self.last_bar else None,
            "bar_to_signal_p50_ms": None
            if np.isnan(lat).all()
            else round(float(np.nanpercentile(lat, 50)), 2),
            "warm_up_s": self.warm_up_s,
        }


class LiveLoop:
    def __init__(
        self,
        engine: Any,  # kimp.streaming.engine.StreamingEngine
        store: OnlineStore,
        holder: ChampionHolder,
        *,
        horizon: int,
        metrics: Metrics | None = None,
        timeseries: Any = None,  # kimp.streaming.timeseries.TimeSeriesStore
        recorder: Any = None,  # kimp.streaming.recorder.Recorder
        rule: PredictionRule | None = None,
        on_signal: Callable[[Signal, float], None] | None = None,
    ) -> None:
        self.engine, self.store, self.holder = engine, store, holder
        self.horizon, self.metrics = horizon, metrics or Metrics()
        self.timeseries, self.recorder = timeseries, recorder
        self.rule = rule or PredictionRule.backtest_defaults()
        self.on_signal = on_signal
        self.state: dict[tuple[str, str], np.ndarray] = {}
        self.history: dict[str, deque[tuple[datetime, np.ndarray]]] = {}
        self.stats = LoopStats()
        self._columns: tuple[tuple[str, ...], np.ndarray] | None = None  # model features -> vector index
        self._n = -1
        # (the loaded model, its last_move label config or None): kimp.models.labels' rule it was fitted with
        self._rule: tuple[LoadedModel, WalkForwardConfig | None] | None = None

    # ------------------------------------------------------------------ one event
    def on_event(self, event: Event) -> list[Signal]:
        t0, c0 = time.perf_counter(), time.thread_time()
        vectors = self.engine.on_event(event)
        engine_cpu = time.thread_time() - c0
        if not vectors:
            return []
        for vec in vectors:
            self.store.put_vector(vec)
        if self.recorder is not None:
            self.recorder.add(vectors)
        if not isinstance(event, BarClose):
            return []
        closes = [v for v in vectors if not v.tick]
        signals: list[Signal] = []
        for ts in sorted({v.ts for v in closes}):
            signals += self._signals(ts, [v for v in closes if v.ts == ts])
        elapsed = time.perf_counter() - t0
        self.stats.bars += len({v.ts for v in closes})
        self.metrics.bars.inc(len({v.ts for v in closes}))
        if signals:
            self.metrics.bar_to_signal.observe(elapsed)
            self.stats.latencies_ms.append(elapsed * 1000)
            self.stats.cpu_ms.append((time.thread_time() - c0) * 1000)  # the same, in this thread's CPU time
            self.stats.engine_cpu_ms.append(engine_cpu * 1000)  # of which the streaming engine
            if len(self.stats.latencies_ms) > 100_000:
                del self.stats.latencies_ms[:50_000]
                del self.stats.cpu_ms[:50_000]
                del self.stats.engine_cpu_ms[:50_000]
        if self.timeseries is not None:  # the audit trail, after the signal is readable
            for signal in signals:
                self.timeseries.append_signal(signal)
            self._append_bars(sorted({v.ts for v in closes}))
        if self.on_signal is not None:
            for signal in signals:
                self.on_signal(signal, elapsed * 1000)
        return signals

    def _append_bars(self, bars: list[datetime]) -> None:
        """The closed bars' premium rows into the time-series store, as the engine computed them for the
        features (StreamingEngine.bar_premium: the kimchi_premium asset's rows). A failure here is counted
        and logged; it never stops the signals."""
        try:
            self.timeseries.append_bars(self.engine.bar_premium(bars))
        except Exception:
            self.metrics.errors.labels("stream_bars").inc()
            log.exception("live loop: bars not appended to PostgreSQL")

    def _matrix(self, loaded: LoadedModel, vec: FeatureVector) -> np.ndarray:
        """The vector's values in the model's feature order (NaN for a feature the catalog lacks)."""
        if self._columns is None or self._columns[0] != loaded.features or len(vec.names) != self._n:
            where = {n: i for i, n in enumerate(vec.names)}
            self._n = len(vec.names)
            idx = np.array([where.get(f, -1) for f in loaded.features], dtype=np.int64)
            self._columns = (loaded.features, idx)
        idx = self._columns[1]
        out = np.where(idx >= 0, vec.values[np.maximum(idx, 0)], np.nan)
        return out

    def _label_config(self, loaded: LoadedModel) -> WalkForwardConfig | None:
        """The label rule the champion's ``last_move`` input was made with (kept by its persistence model);
        None when it does not read ``last_move``, or (said once) when it was saved without its rule."""
        if self._rule is not None and self._rule[0] is loaded:
            return self._rule[1]
        config = None
        if LAST_MOVE in loaded.features:
            rule = label_rule_of(loaded.model)
            if rule is None:
                log.warning(
                    "the champion reads last_move but kept no label rule (saved before it was kept): "
                    "last_move is null live, so its persistence part predicts its class priors",
                    extra={"model": loaded.registered, "version": loaded.version},
                )
            else:
                config = rule_config(rule)
                need = timedelta(minutes=config.horizon_minutes) // timedelta(microseconds=1)
                if getattr(self.engine, "premium_keep_us", 0) < need:
                    log.warning(
                        "the engine keeps less premium history than the champion's horizon: last_move is "
                        "null until it covers it (StreamingEngine premium_history)",
                        extra={"model": loaded.registered, "horizon": config.horizon_minutes},
                    )
        self._rule = (loaded, config)
        return config

    def _last_moves(self, loaded: LoadedModel, ts: datetime) -> dict[str, float] | None:
        """Each coin's ``last_move`` at bar ``ts`` by the batch rule (kimp.models.labels.premium_labels and
        last_move, the champion's saved label config) on the premium rows the engine computed for bar ts
        and the bar one horizon before (StreamingEngine.bar_premium); None when the champion does not read
        it. NaN where the batch value would be null (a bar missing, a null premium)."""
        config = self._label_config(loaded)
        if config is None:
            return None
        try:
            premium = self.engine.bar_premium([ts - timedelta(minutes=config.horizon_minutes), ts])
            moves = last_move(premium_labels(premium, config)).filter(pl.col("ts") == ts)
        except Exception:  # a bad premium row must not stop the signals: last_move null, priors
            self.metrics.errors.labels("stream_last_move").inc()
            log.exception("live loop: last_move not computed", extra={"bar": ts.isoformat()})
            return {}
        values = moves[LAST_MOVE].cast(pl.Float64).fill_null(float("nan")).to_list()
        return dict(zip(moves["coin"].to_list(), values, strict=True))

    def _signals(self, ts: datetime, vectors: list[FeatureVector]) -> list[Signal]:
        try:
            loaded = self.holder.get()
        except NoModelError as exc:
            self.metrics.errors.labels("stream_no_model").inc()
            log.warning("no model: bar scored by nothing", extra={"bar": ts.isoformat(), "error": str(exc)})
            return []
        moves = self._last_moves(loaded, ts)
        rows = []
        for vec in vectors:
            row = self._matrix(loaded, vec)
            if moves is not None:  # not in the streamed vector: the batch rule's value, in its column
                row[loaded.features.index(LAST_MOVE)] = moves.get(vec.coin, np.nan)
            hist = self.history.setdefault(vec.coin, deque(maxlen=max(loaded.history, 1)))
            if hist.maxlen != max(loaded.history, 1):
                hist = self.history[vec.coin] = deque(hist, maxlen=max(loaded.history, 1))
            hist.append((vec.ts, row))
            rows.append((vec.coin, [t for t, _ in hist], np.vstack([m for _, m in hist])))
        if loaded.history <= 1:  # no member reads earlier bars: the rows straight to the model, no frame
            x = np.vstack([r[2][-1] for r in rows]).astype(np.float32)  # float32, as the features table
            by_coin = dict(zip([r[0] for r in rows], loaded.predict_rows(x), strict=True))
        else:
            proba = loaded.predict(model_frame(loaded, rows))
            ends = np.cumsum([len(r[1]) for r in sorted(rows, key=lambda r: r[0])]) - 1
            by_coin = {r[0]: proba[e] for r, e in zip(sorted(rows, key=lambda r: r[0]), ends, strict=True)}
        out = []
        now = datetime.now(UTC)
        for vec in vectors:
            p = by_coin[vec.coin]
            key = (vec.coin, vec.kr_venue)
            state = self.state.setdefault(key, prediction_state())
            target = self.rule.step(
                float(p[0] - p[2]), horizon=self.horizon, interval_s=self.engine.interval_s, state=state
            )
            signal = Signal(
                ts=vec.ts,
                coin=vec.coin,
                kr_venue=vec.kr_venue,
                horizon=self.horizon,
                model=loaded.name,
                model_version=loaded.version,
                p_down=float(p[0]),
                p_flat=float(p[1]),
                p_up=float(p[2]),
                target_position=target,
                feature_ts=vec.known_at,
                feature_set=vec.feature_set,
                written_at=now,
            )
            self.store.put_signal(signal)
            out.append(signal)
        self.stats.signals += len(out)
        self.stats.last_bar = ts
        self.metrics.signals.inc(len(out))
        return out

    # ------------------------------------------------------------------ the loop
    def run(
        self, events: Iterator[Event], *, stop: threading.Event | None = None, max_bars: int | None = None
    ) -> LoopStats:
        """Consume ``events`` until they end, ``stop`` is set or ``max_bars`` bars closed. A bar that fails
        is logged and counted (metric ``kimp_errors_total{where="stream"}``); the loop goes on."""
        self.stats.running = True
        try:
            for event in events:
                if stop is not None and stop.is_set():
                    break
                try:
                    self.on_event(event)
                except Exception:
                    self.stats.errors += 1
                    self.metrics.errors.labels("stream").inc()
                    log.exception("live loop: event failed", extra={"event": type(event).__name__})
                if max_bars is not None and self.stats.bars >= max_bars:
                    break
        finally:
            self.stats.running = False
            if self.recorder is not None:
                self.recorder.close()
        return self.stats


# ---------------------------------------------------------------------------------------------- building
@dataclass(frozen=True)
class StreamOptions:
    """``kimp stream`` / ``kimp serve --stream`` options."""

    source: str = "simulated"
    start: date | None = None
    end: date | None = None  # inclusive
    speed: float | None = None
    kr_venue: str | None = None
    record: bool = False
    # whole days of stored history before the start day to warm up from (None: every day the catalog reads;
    # 0: none at all, a cold start)
    warmup_days: int | None = None
    max_bars: int | None = None

    def __post_init__(self) -> None:
        if self.source not in ("simulated", "files", "exchange"):
            raise ValueError(f"--source is {self.source!r}: expected simulated, files or exchange")
        if self.end is not None and self.start is None:
            raise ValueError("--end needs --start")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"--end {self.end} is before --start {self.start}")
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"--speed must be > 0 (times real time), got {self.speed}")
        if self.source == "exchange" and (self.start is not None or self.speed is not None):
            raise ValueError("--source exchange is live: --start, --end and --speed apply to stored sources")
        if self.warmup_days is not None and self.warmup_days < 0:
            raise ValueError(f"--warmup-days must be >= 0, got {self.warmup_days}")


class HistoryFrom:
    """A stored source whose days before ``first`` are empty: a shorter warm-up than the catalog's look-back
    (features whose look-back is not covered stay null until it is, as the batch build would give them)."""

    def __init__(self, source: Any, first: date) -> None:
        self.source, self.first, self.name = source, first, getattr(source, "name", "source")

    def provides(self, table: str, venue: str | None = None) -> bool:
        return self.source.provides(table, venue)

    def __getattr__(self, table: str) -> Any:
        method = getattr(self.source, table)

        def read(*args: Any) -> Any:
            frame = method(*args)
            return frame.clear() if args[-1] < self.first else frame

        return read


def open_stream(settings: Any, options: StreamOptions) -> tuple[Any, Any, Callable[[], Iterator[Event]]]:
    """(engine, feed, warm_up) for the options: ``warm_up()`` loads the stored history (stored sources) and
    returns the feed's events. Nothing heavy runs before ``warm_up()``."""
    from kimp.features.types import FeatureConfig, FeatureInputs
    from kimp.market_data.source import build_source
    from kimp.streaming.engine import StreamingEngine
    from kimp.streaming.feeds import StoredFeed, stored_history

    config = settings.features or FeatureConfig()
    venue = options.kr_venue or settings.streaming.kr_venue
    if options.source == "exchange":
        from kimp.streaming.exchange_feed import ExchangeFeed

        feed = ExchangeFeed(websocket=True)
        engine = StreamingEngine(
            config, interval_s=feed.interval_s, kr_venue=venue, premium_history=PREMIUM_HISTORY
        )
        return engine, feed, feed.events
    source = build_source(
        options.source,
        seed=settings.seed,
        data_dir=settings.data_dir,
        orderbook_interval_ms=settings.orderbook_interval_ms,
    )
    if options.start is None:
        if options.source != "simulated":
            raise ValueError("--source files replays stored history: give --start (and --end)")
        now = datetime.now(UTC)
        start = now.replace(second=0, microsecond=0)  # live: the simulated market from the current minute
        speed = options.speed if options.speed is not None else 1.0
    else:
        start = datetime(options.start.year, options.start.month, options.start.day, tzinfo=UTC)
        speed = options.speed
    end = (
        datetime(options.end.year, options.end.month, options.end.day, tzinfo=UTC) + timedelta(days=1)
        if options.end is not None
        else None
    )
    if options.warmup_days:
        source = HistoryFrom(source, start.date() - timedelta(days=options.warmup_days))
    feed = StoredFeed(source, start=start, end=end, speed=speed)
    engine = StreamingEngine(
        config, interval_s=feed.interval_s, kr_venue=venue, premium_history=PREMIUM_HISTORY
    )

    def warm_up() -> Iterator[Event]:
        t0 = time.perf_counter()
        history = (
            FeatureInputs(
                premium=None, candles=None
            )  # --warmup-days 0: a cold start, every feature warms up live
            if options.warmup_days == 0
            else stored_history(source, until=start, interval_s=engine.interval_s, config=config)
        )
        engine.warm_up(history, until=start)
        log.info(
            "warmed up", extra={"until": start.isoformat(), "seconds": round(time.perf_counter() - t0, 2)}
        )
        return feed.events()

    return engine, feed, warm_up


def build_loop(
    settings: Any,
    options: StreamOptions,
    *,
    store: OnlineStore,
    holder: ChampionHolder,
    metrics: Metrics,
    on_signal: Callable[[Signal, float], None] | None = None,
) -> tuple[LiveLoop, Callable[[], Iterator[Event]]]:
    """The loop and its ``warm_up`` (see open_stream), with PostgreSQL and the recorder as configured."""
    engine, _feed, warm_up = open_stream(settings, options)
    timeseries = None
    if settings.streaming.pg_url:
        from kimp.streaming.timeseries import TimeSeriesStore

        timeseries = TimeSeriesStore(
            settings.streaming.pg_url, engine.names, prefix=settings.streaming.prefix
        )
    recorder = None
    if options.record:
        from kimp.storage import ParquetStore
        from kimp.streaming.recorder import Recorder

        recorder = Recorder(ParquetStore(settings.storage_uri), timeseries)
    loop = LiveLoop(
        engine,
        store,
        holder,
        horizon=settings.walk_forward.horizon_minutes,
        metrics=metrics,
        timeseries=timeseries,
        recorder=recorder,
        on_signal=on_signal,
    )
    return loop, warm_up
