"""Backtest speed: one year of 1-minute bars (525,600) with a z-score strategy and every cost model.

The ratio compares the same work: kimp's vectorized engine and vectorbt ``Portfolio.from_orders`` run the
same trade (SAME_TRADE: the spread strategy with taker fees and fixed slippage, all that vectorbt models,
closed at each day's end) on the same synthetic prices and signals, and their fills, fees and equity
curves are asserted equal (1e-9) before anything is timed. Then, timed alone:
- kimp vectorized with every cost model (sqrt slippage, impact, FX conversion, perp funding, transfers),
  the run and its metrics (the result's frames are built on first access; their cost is printed too);
- kimp event-driven engine with 1-minute L10 books on both legs (market orders, 200 ms latency).
Data is synthesized with NumPy (seeded). Timings: median of ``--repeat`` runs after three warm-up runs;
the machine's load average is printed with them (other processes on the cores inflate every timing).
The LAST line is machine-readable:
``bars=<n> kimp_s=<x> vectorbt_s=<y> ratio=<y/x> kimp_all_costs_s=<c> event_driven_s=<z>
events_per_s=<e>``.
Run: ``.venv/bin/python benchmarks/bench_backtest.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    VenueFees,
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


# The trade both sides run for the speed ratio: the spread strategy (long the Korean leg, short the
# Binance perp, the same coins on both legs), taker fees and fixed slippage (all vectorbt models), a
# position changed only when the target changes (rebalance threshold 0.99: kimp does not resize a held
# position as prices move), closed at the last bar of each UTC day, capital and inventory large enough
# that no order is cut (asserted: no rejections, no transfers).
SAME_COSTS = dataclasses.replace(
    CostConfig.free(),
    upbit=VenueFees(0.0005, 0.0005),
    binance_perp=VenueFees(0.0002, 0.0005),
    slippage=SlippageModel(kind="fixed", fixed_bps=0.5, coef=0.0),
)
SAME_TRADE = BacktestConfig(
    capital_usdt=200_000.0, hedge="perp", inventory_fraction=10.0, rebalance_threshold=0.99, costs=SAME_COSTS
)


LEGS = {"spread": (1.0, -1.0), "kr_only": (1.0, 0.0), "binance_only": (0.0, 1.0)}


def vectorbt_run(market: Market, target: np.ndarray, cfg: BacktestConfig) -> Callable[[], dict[str, object]]:
    """vectorbt ``Portfolio.from_orders`` running kimp's trade ``cfg`` (SAME_TRADE, any mode): one column
    per traded leg, the Korean leg in KRW and the Binance leg in USDT, each order a target amount of coins
    sized by kimp's documented rule (``|s| x base / Korean price`` at the decision bar, ``base`` the KRW
    capital, or the smaller of the two capitals when both legs trade), at the bars where kimp's target
    changes (the day-end close-out included). The Binance leg's PnL is converted at each bar's rate, as
    kimp marks it. Returns a function giving the fills, the fees in KRW and the combined equity curve.
    Also used by tests/test_reference_backtest.py, which checks it against the engine in CI."""
    import vectorbt as vbt  # benchmark and reference-test dependency, never imported by kimp

    legs = [i for i, w in enumerate(LEGS[cfg.mode]) if w != 0]
    weights = np.array([LEGS[cfg.mode][i] for i in legs])
    fee_of = (
        cfg.costs.kr_fees(market.kr_venue).taker,
        (cfg.costs.binance_perp if cfg.hedge == "perp" else cfg.costs.binance_spot).taker,
    )
    fees = np.array([[fee_of[i] for i in legs]])
    slip = np.full((1, len(legs)), cfg.costs.slippage.fixed_bps / 1e4)
    close = np.column_stack([market.kr_close, market.bn_close])[:, legs]
    # cash never limits an order (kimp lets a venue's cash go negative: the run's losses are in its PnL)
    init = np.array([100 * cfg.capital_krw, 100 * cfg.capital_usdt])[legs]
    to_krw = np.column_stack([np.ones(market.n), market.conv])[:, legs]  # KRW per unit of a leg's currency

    def run() -> dict[str, object]:
        s = np.where(market.day_end, 0.0, target)  # the day-end close-out
        change = np.flatnonzero(s != np.concatenate([[0.0], s[:-1]]))
        if len(legs) == 2:
            base = np.minimum(cfg.capital_krw, cfg.capital_usdt * market.conv[change])
        else:
            base = cfg.capital_krw if legs[0] == 0 else cfg.capital_usdt * market.conv[change]
        price = market.kr_close if legs[0] == 0 else market.bn_close * market.conv
        size = np.full(close.shape, np.nan)  # NaN: no order on that bar
        size[change] = (s[change] * base / price[change])[:, None] * weights[None, :]
        pf = vbt.Portfolio.from_orders(
            close,
            size,
            size_type="targetamount",
            direction="both",
            fees=fees,
            slippage=slip,
            init_cash=init,
            freq="1min",
        )
        value = pf.value().to_numpy().reshape(market.n, len(legs))
        orders = pf.orders.values
        fees_krw = (orders["fees"] * to_krw[orders["idx"], orders["col"]]).sum()
        capital = cfg.capital_krw + cfg.capital_usdt * market.conv[0]
        equity = capital + ((value - init) * to_krw).sum(axis=1)
        return {"fills": int(orders.shape[0]), "fees": float(fees_krw), "equity": equity}

    return run


def assert_same_results(kimp: object, vbt_out: dict[str, object]) -> None:
    """Both sides booked the same trade: fills, fees and the equity curve to 1e-9."""
    m = kimp.metrics  # type: ignore[attr-defined]
    assert m["rejections"] == 0 and m["transfers"] == 0, "an order was cut: not the same trade"
    assert int(m["fills"]) == vbt_out["fills"], (m["fills"], vbt_out["fills"])
    fees = kimp.costs["fees"]  # type: ignore[attr-defined]
    assert abs(fees - vbt_out["fees"]) <= 1e-9 * abs(fees), (fees, vbt_out["fees"])
    ours = kimp.equity["equity"].to_numpy()  # type: ignore[attr-defined]
    # relative to the capital too: a losing year crosses zero equity, where a relative error means nothing
    np.testing.assert_allclose(vbt_out["equity"], ours, rtol=1e-9, atol=1e-9 * ours[0])


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
    signals = zscore_signals(market, window=240, entry_z=2.0, exit_z=0.5)
    target = signals["target"].to_numpy()

    # The ratio: both engines on the same trade, checked equal before anything is timed.
    kimp_s, same = timed(lambda: run_vectorized(market, signals, SAME_TRADE), args.repeat)
    t0 = time.perf_counter()
    vbt_fn = vectorbt_run(market, target, SAME_TRADE)
    vbt_out = vbt_fn()
    print(f"vectorbt first call (compilation): {time.perf_counter() - t0:.1f} s")
    assert_same_results(same, vbt_out)
    sm = same.metrics  # type: ignore[attr-defined]
    print(
        f"same trade on both sides (fills, fees and equity equal to 1e-9): fills={sm['fills']:.0f} "
        f"fees={same.costs['fees']:,.0f} KRW total_return={sm['total_return']:.4f}"  # type: ignore[attr-defined]
    )
    vbt_s, _ = timed(vbt_fn, args.repeat)
    print(f"kimp vectorized: {kimp_s * 1e3:.2f} ms")
    print(f"vectorbt Portfolio.from_orders (+ its value curve): {vbt_s * 1e3:.2f} ms")
    print(f"ratio vectorbt / kimp: {vbt_s / kimp_s:.1f}x")

    # kimp's own workload: every cost model (vectorbt has no equivalent of the sqrt slippage, impact,
    # funding, FX conversion or transfers), timed alone.
    costs = CostConfig(
        slippage=SlippageModel(kind="sqrt", fixed_bps=0.5, coef=0.001),
        funding=FundingModel(rate=0.0001),
        transfer=TransferModel(delay_s=1800),
    )
    cfg = BacktestConfig(hedge="perp", inventory_fraction=0.6, costs=costs)  # transfers happen too
    full_s, res = timed(lambda: run_vectorized(market, signals, cfg), args.repeat)
    m = res.metrics  # type: ignore[attr-defined]
    print(
        f"kimp vectorized, all costs: {full_s * 1e3:.2f} ms  fills={m['fills']:.0f} round_trips="
        f"{m['round_trips']:.0f} transfers={m['transfers']:.0f} total_return={m['total_return']:.4f}"
    )

    def with_frames() -> object:
        r = run_vectorized(market, signals, cfg)
        return r.equity, r.trades, r.transfers, r.rejections

    framed_s, _ = timed(with_frames, args.repeat)
    print(
        f"kimp vectorized with the result frames built (they are built on first access): {framed_s * 1e3:.2f} ms"
    )

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
        f"kimp_all_costs_s={full_s:.6f} event_driven_s={ev_s:.4f} events_per_s={events / ev_s:.0f}"
    )


if __name__ == "__main__":
    main()
