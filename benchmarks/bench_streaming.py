"""The streaming feature engine's speed and parity (issue 14; figures in docs/benchmarks.md).

1. Simulated 1-minute market, order books every 5 s, both coins, warmed up from the stored history the
   catalog's look-back reads. ``--tick-bars`` bars streamed with tick refresh on (one provisional vector per
   coin at every snapshot): CPU and wall time of each bar close and each tick refresh, and of a whole bar
   (its close plus the refreshes before it).
2. The engine then replays the rest of the day (``--replay-bars`` bars) without snapshots
   (``StoredFeed(snapshots=False)``, each bar's books handed over at its close): bars per second of the
   engine (the feed's events made first), and with the feed; each close's CPU / wall time.
3. The batch ``features`` build of the same day (the asset's inputs: kimp.streaming.feeds.batch_inputs):
   bars per second = the day's bars / the build's time; the ratio replay / batch. Also the batch build of a
   single bar (start = that bar), which is what computing each new bar with the batch code costs.
4. Parity: every streamed bar-close vector (tick run and replay) against the batch rows: mismatched cells
   (kimp.streaming.parity: relative difference <= 1e-6, nulls identical).
5. ``--real`` (default when ../shared/data/real exists): the real hourly Bithumb/Binance samples, two days
   from 2018-01-09 replayed and compared the same way.

CPU time is the process's (time.process_time), so it is not inflated by other processes on a shared
machine; wall time is. Run quietly:

    nice -n 10 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_streaming.py

Last line: close_cpu_p50_ms=<x> close_cpu_p99_ms=<x> close_wall_p50_ms=<x> close_wall_p99_ms=<x>
bar_with_ticks_cpu_p50_ms=<x> bar_with_ticks_cpu_p99_ms=<x> tick_cpu_p50_ms=<x> replay_bars_per_s=<n>
replay_with_feed_bars_per_s=<n> batch_bars_per_s=<n> ratio=<x> one_bar_ratio=<x> real_ratio=<x> mismatches=<n>
(ratio: the engine's replay bars/s over the batch day build's bars/s, CPU, neither counting the source's
read; one_bar_ratio: the batch build of one bar
over a replayed bar, CPU)
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from kimp.features import FeatureConfig, build_features
from kimp.market_data.simulated import SimulatedSource
from kimp.streaming import BarClose, StreamingEngine
from kimp.streaming.events import Rows
from kimp.streaming.feeds import StoredFeed, batch_inputs, stored_history
from kimp.streaming.parity import compare, vectors_frame
from kimp.timeutil import day_start

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


class Clock:
    """CPU (process) and wall seconds since the last ``lap``."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def lap(self) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        out = (cpu - self.cpu, wall - self.wall)
        self.cpu, self.wall = cpu, wall
        return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def stream(engine: StreamingEngine, events, *, closes: list, ticks: list, bars: list) -> list:
    """Feed events to the engine, timing each close and each order-book event; returns the close vectors."""
    vectors = []
    since_close = [0.0, 0.0]
    for event in events:
        clock = Clock()
        out = engine.on_event(event)
        cpu, wall = clock.lap()
        if isinstance(event, BarClose):
            closes.append((cpu, wall))
            bars.append((cpu + since_close[0], wall + since_close[1]))
            since_close = [0.0, 0.0]
            vectors.extend(out)
        elif isinstance(event, Rows) and event.table == "orderbook" and out:
            ticks.append((cpu, wall))
            since_close[0] += cpu
            since_close[1] += wall
    return vectors


def simulated(args: argparse.Namespace, config: FeatureConfig) -> dict[str, float]:
    source = SimulatedSource(seed=7, orderbook_interval_ms=5_000)
    day = date(2024, 3, 6)
    bars_total = args.tick_bars + args.replay_bars
    start = day_start(day) + timedelta(days=1) - timedelta(minutes=bars_total)
    mid = start + timedelta(minutes=args.tick_bars)
    end = mid + timedelta(minutes=args.replay_bars)

    clock = Clock()
    history = stored_history(source, until=start, interval_s=60, config=config)
    load_cpu, load_wall = clock.lap()
    engine = StreamingEngine(config, interval_s=60, tick=True)
    engine.warm_up(history, until=start)
    warm_cpu, warm_wall = clock.lap()
    print(
        f"warm-up: stored history read {load_wall:.1f} s wall ({load_cpu:.1f} s CPU), engine warm-up "
        f"{warm_wall:.1f} s wall ({warm_cpu:.1f} s CPU) for {config.max_lookback_days} days of 1-minute bars"
    )

    # 1. tick refresh on
    closes: list = []
    ticks: list = []
    bars: list = []
    feed = StoredFeed(source, start=start, end=mid, interval_s=60, snapshots=True)
    vectors = stream(engine, feed.events(), closes=closes, ticks=ticks, bars=bars)
    tc = [c for c, _ in closes[1:]]  # (the first close after warm-up also pays numba's first calls)
    tw = [w for _, w in closes[1:]]
    bc = [c for c, _ in bars[1:]]
    kc = [c for c, _ in ticks]
    kw = [w for _, w in ticks]
    print(
        f"tick run, {len(closes)} bars, {len(ticks)} refreshes (2 coins each): close CPU p50 {pct(tc, 50):.2f} "
        f"p99 {pct(tc, 99):.2f} ms, wall p50 {pct(tw, 50):.2f} p99 {pct(tw, 99):.2f} ms; tick refresh CPU p50 "
        f"{pct(kc, 50):.2f} p99 {pct(kc, 99):.2f} ms, wall p50 {pct(kw, 50):.2f} p99 {pct(kw, 99):.2f} ms; "
        f"a bar (close + its refreshes) CPU p50 {pct(bc, 50):.1f} p99 {pct(bc, 99):.1f} ms"
    )

    # 2. replay without snapshots
    engine.tick = False
    closes2: list = []
    feed = StoredFeed(source, start=mid, end=end, interval_s=60, snapshots=False)
    clock = Clock()
    events = list(feed.events())  # the source's day read and cut into events
    feed_cpu, _ = clock.lap()
    vectors += stream(engine, events, closes=closes2, ticks=[], bars=[])
    replay_cpu, replay_wall = clock.lap()
    rc = [c for c, _ in closes2]
    rw = [w for _, w in closes2]
    replay_rate = args.replay_bars / replay_cpu
    with_feed = args.replay_bars / (replay_cpu + feed_cpu)
    print(
        f"replay, {args.replay_bars} bars without snapshots: the engine {replay_rate:.0f} bars/s per CPU second "
        f"({args.replay_bars / replay_wall:.0f} wall), {with_feed:.0f} with the feed (the source's day read and "
        f"cut into events: {feed_cpu:.2f} s CPU); close CPU p50 {pct(rc, 50):.2f} p99 {pct(rc, 99):.2f} ms, "
        f"wall p50 {pct(rw, 50):.2f} p99 {pct(rw, 99):.2f} ms"
    )

    # 3. batch build of the same day, and of one bar
    clock = Clock()
    inputs = batch_inputs(source, day, config)
    in_cpu, in_wall = clock.lap()
    batch = build_features(
        inputs, start=day_start(day), end=day_start(day) + timedelta(days=1), config=config
    )
    b_cpu, b_wall = clock.lap()
    build_features(inputs, start=end - timedelta(minutes=1), end=end, config=config)
    one_cpu, one_wall = clock.lap()
    batch_rate = 1440 / b_cpu
    print(
        f"batch: the day's inputs {in_wall:.1f} s wall ({in_cpu:.1f} s CPU); build_features of the day (1,440 "
        f"bars) {b_wall:.1f} s wall, {b_cpu:.2f} s CPU = {batch_rate:.0f} bars/s per CPU second; of one bar "
        f"{one_wall * 1000:.0f} ms wall, {one_cpu * 1000:.0f} ms CPU ({one_cpu * replay_rate:.0f}x a replayed bar)"
    )
    report = compare(batch.frame, vectors_frame(vectors), engine.names)
    print(f"parity (simulated, {len(vectors)} vectors): {report}")
    return {
        "close_cpu_p50_ms": pct(rc, 50),
        "close_cpu_p99_ms": pct(rc, 99),
        "close_wall_p50_ms": pct(rw, 50),
        "close_wall_p99_ms": pct(rw, 99),
        "bar_with_ticks_cpu_p50_ms": pct(bc, 50),
        "bar_with_ticks_cpu_p99_ms": pct(bc, 99),
        "tick_cpu_p50_ms": pct(kc, 50),
        "replay_bars_per_s": replay_rate,
        "replay_with_feed_bars_per_s": with_feed,
        "batch_bars_per_s": batch_rate,
        "ratio": replay_rate / batch_rate,
        "one_bar_ratio": one_cpu * replay_rate,
        "mismatches": report.mismatches,
    }


def real(config: FeatureConfig) -> tuple[float, int]:
    from kimp.market_data.files import FilesSource

    source = FilesSource(REAL)
    start = datetime(2018, 1, 9, tzinfo=UTC)
    end = start + timedelta(days=2)
    history = stored_history(source, until=start, interval_s=3600, config=config)
    engine = StreamingEngine(config, interval_s=3600, tick=False)
    engine.warm_up(history, until=start)
    clock = Clock()
    events = list(StoredFeed(source, start=start, end=end, interval_s=3600, snapshots=False).events())
    clock.lap()
    vectors = list(engine.run(events))
    cpu, _ = clock.lap()
    rate = 48 / cpu
    frames = []
    b_cpu = 0.0
    for d in (start.date(), start.date() + timedelta(days=1)):
        inputs = batch_inputs(source, d, config)
        clock.lap()
        frames.append(
            build_features(inputs, start=day_start(d), end=day_start(d) + timedelta(days=1), config=config)
        )
        b_cpu += clock.lap()[0]
    batch = pl.concat([f.frame for f in frames])
    report = compare(batch, vectors_frame(vectors), engine.names)
    batch_rate = 48 / b_cpu
    print(
        f"real hourly (2018-01-09..10, {len(vectors)} vectors): replay {rate:.0f} bars/s, batch build {batch_rate:.0f} "
        f"bars/s per CPU second, ratio {rate / batch_rate:.1f}; parity: {report}"
    )
    return rate / batch_rate, report.mismatches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tick-bars", type=int, default=20, help="bars streamed with tick refresh on")
    parser.add_argument("--replay-bars", type=int, default=220, help="bars replayed without snapshots after")
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=REAL.is_dir())
    args = parser.parse_args()
    config = FeatureConfig()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    t0 = time.perf_counter()
    out = simulated(args, config)
    real_ratio, real_bad = real(config) if args.real else (float("nan"), 0)
    load = os.getloadavg()
    print(
        f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {time.perf_counter() - t0:.0f} s in all"
    )
    out["real_ratio"] = real_ratio
    out["mismatches"] += real_bad
    keys = (
        "close_cpu_p50_ms",
        "close_cpu_p99_ms",
        "close_wall_p50_ms",
        "close_wall_p99_ms",
        "bar_with_ticks_cpu_p50_ms",
        "bar_with_ticks_cpu_p99_ms",
        "tick_cpu_p50_ms",
        "replay_bars_per_s",
        "replay_with_feed_bars_per_s",
        "batch_bars_per_s",
        "ratio",
        "one_bar_ratio",
        "real_ratio",
        "mismatches",
    )
    print(
        " ".join(
            f"{k}={out[k]:.0f}" if k.endswith(("per_s", "mismatches")) else f"{k}={out[k]:.2f}" for k in keys
        )
    )


if __name__ == "__main__":
    main()
