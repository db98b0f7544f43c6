"""Backtest speed: one year of 1-minute bars (525,600) with a z-score strategy and every cost model.

Side by side on the same synthetic prices, signals, fees and (fixed) slippage:
- kimp vectorized engine (all costs: fees, sqrt slippage, impact, FX conversion, perp funding, transfers),
  the run and its metrics (the result's frames are built on first access; their cost is printed too);
- vectorbt ``Portfolio.from_signals`` (two columns, Korean leg and Binance leg; fees and fixed slippage,
  which is all it models), timed after its numba compilation;
- kimp event-driven engine with 1-minute L10 books on both legs (market orders, 200 ms latency).
Data is synthesized with NumPy (seeded). Timings: median of ``--repeat`` runs after three warm-up runs;
the machine's load average is printed with them (other processes on the cores inflate every timing).
The LAST line is machine-readable:
``bars=<n> kimp_s=<x> vectorbt_s=<y> ratio=<y/x> event_driven_s=<z> events_per_s=<e>``.
Run: ``.venv/bin/python benchmarks/bench_backtest.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from kimp.backtest import (
    BacktestConfig,
    CostConfig,
    FundingModel,
    SlippageModel,
    TransferModel,
    run_event_driven,
    run_vectorized,
    zscore_signals,
)
from kimp.backtest.market import US, Book, Market

MINUTES_PER_YEAR = 525_600


def synth_market(n: int, seed: int = 7, with_books: bool = True) -> Market:
    """A year of 1-minute BTC bars: GBM Binance price, AR(1) premium around 3%, slow FX, volumes, books."""
    rng = np.random.default_rng(seed)
    ts = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64) + np.arange(n, dtype=np.int64) * 60 * US
    bn = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0006, n)))
    eps = rng.normal(0.0, 0.0004, n)
    prem = np.empty(n)
    prem[0] = 0.03
    for i in range(1, n):  # AR(1), half-life about 10 hours
        prem[i] = 0.03 + 0.9988 * (prem[i - 1] - 0.03) + eps[i]
    fx_hours = n // 60 + 1
    fx_rate = 1350.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0003, fx_hours)))
    fx_ts = ts[0] + np.arange(fx_hours, dtype=np.int64) * 3600 * US  # published on the hour
    conv = fx_rate[np.searchsorted(fx_ts, ts + 60 * US, side="right") - 1]
    kr = (1.0 + prem) * bn * conv
    kr_vol = rng.gamma(2.0, 2.0, n)
    bn_vol = rng.gamma(2.0, 10.0, n)
    books = {}
    if with_books:
        lvl = np.arange(1, 11)[None, :]
        for leg, close, tick in (("kr", kr, 1000.0), ("bn", bn, 0.01)):
            half = np.maximum(close * 0.00005, tick)[:, None]
            size = rng.gamma(2.0, 0.5, (n, 10)) * lvl * 0.3
            books[leg] = Book(
                ts=ts + 60 * US,  # the snapshot at each bar close
                bid_px=close[:, None] - half * (2 * lvl - 1),
                bid_sz=size,
                ask_px=close[:, None] + half * (2 * lvl - 1),
                ask_sz=size[:, ::-1].copy(),
            )
    return Market(
        coin="BTC",
        kr_venue="upbit",
        interval_s=60,
        premium_column="premium_fx",
        ts=ts,
        premium=prem,
        kr_close=kr,
        bn_close=bn,
        conv=conv,
        kr_volume=kr_vol,
        bn_volume=bn_vol,
        tradable=np.ones(n, dtype=np.bool_),
        fx_ts=fx_ts,
        fx_rate=fx_rate,
        kr_book=books.get("kr"),
        bn_book=books.get("bn"),
    )


def timed(fn: Callable[[], object], repeat: int, warmup: int = 3) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls after ``warmup`` calls (JIT compilation or cache load, and
    the memory allocator reaching its steady state: the first calls of a fresh process page-fault in
    memory that later calls reuse). Same treatment for every engine."""
    out = None
    for _ in range(max(1, warmup)):
        out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def vectorbt_run(
    market: Market, target: np.ndarray, fees: tuple[float, float], slip: float
) -> Callable[[], object]:
    import vectorbt as vbt  # benchmark-only dependency, never imported by kimp

    prev = np.concatenate([[0.0], target[:-1]])
    long_in = (target > 0) & (prev <= 0)
    short_in = (target < 0) & (prev >= 0)
    long_out = (prev > 0) & (target <= 0)
    short_out = (prev < 0) & (target >= 0)
    close = np.column_stack([market.kr_close, market.bn_close * market.conv])
    entries = np.column_stack([long_in, short_in])  # the Binance leg mirrors the Korean one
    exits = np.column_stack([long_out, short_out])
    short_entries = np.column_stack([short_in, long_in])
    short_exits = np.column_stack([short_out, long_out])
    fee_arr = np.array([fees])
    slip_arr = np.array([[slip, slip]])

    def run() -> object:
        pf = vbt.Portfolio.from_signals(
            close,
            entries,
            exits,
            short_entries=short_entries,
            short_exits=short_exits,
            size=100_000_000.0,
            size_type="value",
            fees=fee_arr,
            slippage=slip_arr,
            init_cash=1e9,
            freq="1min",
        )
        return pf.final_value()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=MINUTES_PER_YEAR)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print("load average at start (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    t0 = time.perf_counter()
    market = synth_market(args.bars)
    print(
        f"synthesized {market.n:,} bars with 1-minute L10 books on both legs in {time.perf_counter() - t0:.2f} s"
    )
    costs = CostConfig(
        slippage=SlippageModel(kind="sqrt", fixed_bps=0.5, coef=0.001),
        funding=FundingModel(rate=0.0001),
        transfer=TransferModel(delay_s=1800),
    )
    cfg = BacktestConfig(hedge="perp", inventory_fraction=0.6, costs=costs)  # transfers happen too
    t0 = time.perf_counter()
    signals = zscore_signals(market, window=240, entry_z=2.0, exit_z=0.5)
    print(f"zscore_signals: {time.perf_counter() - t0:.4f} s (first call includes loading the numba cache)")
    target = signals["target"].to_numpy()

    kimp_s, res = timed(lambda: run_vectorized(market, signals, cfg), args.repeat)
    m = res.metrics  # type: ignore[attr-defined]
    print(
        f"kimp vectorized (all costs): {kimp_s * 1e3:.2f} ms  fills={m['fills']:.0f} round_trips="
        f"{m['round_trips']:.0f} transfers={m['transfers']:.0f} total_return={m['total_return']:.4f}"
    )

    def with_frames() -> object:
        r = run_vectorized(market, signals, cfg)
        return r.equity, r.trades, r.transfers, r.rejections

    framed_s, _ = timed(with_frames, args.repeat)
    print(
        f"kimp vectorized with the result frames built (they are built on first access): {framed_s * 1e3:.2f} ms"
    )
    fee_kr, fee_bn = cfg.costs.upbit.taker, cfg.costs.binance_perp.taker
    t0 = time.perf_counter()
    vbt_fn = vectorbt_run(market, target, (fee_kr, fee_bn), 0.5 / 1e4)
    vbt_fn()
    print(f"vectorbt first call (compilation): {time.perf_counter() - t0:.1f} s")
    vbt_s, _ = timed(vbt_fn, args.repeat)
    print(f"vectorbt Portfolio.from_signals (fees + fixed slippage): {vbt_s * 1e3:.2f} ms")
    print(f"ratio vectorbt / kimp: {vbt_s / kimp_s:.1f}x")

    ev_cfg = BacktestConfig(
        hedge="perp", inventory_fraction=0.6, costs=costs, fill="book", order_type="market"
    )
    ev_s, ev = timed(lambda: run_event_driven(market, signals, ev_cfg), max(1, args.repeat // 2))
    em = ev.metrics  # type: ignore[attr-defined]
    events = em["events"]
    print(
        f"kimp event-driven (book fills): {ev_s:.3f} s for {events:,.0f} events  fills={em['fills']:.0f} "
        f"unfilled_qty={em['unfilled_qty']:.3f} total_return={em['total_return']:.4f}"
    )
    print("load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(
        f"bars={market.n} kimp_s={kimp_s:.6f} vectorbt_s={vbt_s:.6f} ratio={vbt_s / kimp_s:.2f} "
        f"event_driven_s={ev_s:.4f} events_per_s={events / ev_s:.0f}"
    )


if __name__ == "__main__":
    main()
