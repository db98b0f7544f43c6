"""Positions carry across days: days run one by one from each other's closing state equal one run over
them, fills, marks and costs bit for bit, for both engines (issue 11)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import polars as pl
import pytest

from kimp.backtest import (
    BacktestConfig,
    Book,
    ClosingState,
    CostConfig,
    TransferModel,
    compute_metrics,
    market_from_arrays,
    prediction_state,
    run_event_driven,
    run_vectorized,
    zscore_signals,
    zscore_state,
)
from kimp.backtest import kernel as K
from kimp.backtest.market import DAY_US, Market
from kimp.backtest.signals import prediction_targets, zscore_targets

US = 1_000_000
T0 = 1_709_251_200 * US  # 2024-03-01 00:00 UTC
EQUITY_METRICS = (
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "profit_factor",
    "round_trips",
    "exposure",
    "final_equity",
    "pnl",
    "bars",
)


def _days(m: Market) -> list[Market]:
    """``m`` cut at its UTC day boundaries: each day's bars, conversion-rate updates and snapshots."""
    day = m.ts // DAY_US
    cuts = [0, *(np.flatnonzero(np.diff(day)) + 1).tolist(), m.n]
    out = []
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        close_lo = m.ts[lo - 1] + m.interval_s * US if lo else -1
        close_hi = m.ts[hi - 1] + m.interval_s * US
        fx = (m.fx_ts > close_lo) & (m.fx_ts <= close_hi)
        books = []
        for book in (m.kr_book, m.bn_book):
            if book is None:
                books.append(None)
                continue
            t_lo = m.ts[lo]
            t_hi = m.ts[hi] if hi < m.n else np.iinfo(np.int64).max
            keep = (book.ts >= t_lo) & (book.ts < t_hi) if k else book.ts < t_hi
            books.append(
                Book(book.ts[keep], *(a[keep] for a in (book.bid_px, book.bid_sz, book.ask_px, book.ask_sz)))
            )
        per_bar = {
            name: getattr(m, name)[lo:hi]
            for name in (
                "ts",
                "premium",
                "kr_close",
                "bn_close",
                "conv",
                "kr_volume",
                "bn_volume",
                "tradable",
            )
        }
        out.append(
            m.replace(**per_bar, fx_ts=m.fx_ts[fx], fx_rate=m.fx_rate[fx], kr_book=books[0], bn_book=books[1])
        )
    return out


def _chain(run, days: list[Market], signals: pl.DataFrame, cfg: BacktestConfig):
    """Each day from the previous day's closing state (the first starts flat)."""
    results, start = [], None
    for m in days:
        sig = signals.filter(pl.col("ts").is_between(m.ts_series()[0], m.ts_series()[-1]))
        r = run(m, sig, cfg, start=start)
        start = ClosingState.from_bytes(r.closing.to_bytes())  # through its serialised form, as a partition
        results.append(r)
    return results


def _assert_same_run(days, whole) -> None:
    cat = pl.concat([r.trades for r in days])
    assert cat.height > 50 and cat.equals(whole.trades)
    equity = np.concatenate([r.records.equity for r in days])
    assert np.array_equal(equity, whole.records.equity)
    assert pl.concat([r.equity for r in days]).equals(whole.equity)
    assert pl.concat([r.transfers for r in days]).equals(whole.transfers)
    assert [x for r in days for x in r.rejections] == whole.rejections
    last, ref = days[-1].closing, whole.closing
    assert np.array_equal(last.state, ref.state) and np.array_equal(last.params, ref.params)
    assert last.bars == ref.bars and last.equity == ref.equity
    assert np.array_equal(last.kr_tail, ref.kr_tail) and np.array_equal(last.orders, ref.orders)
    # Each day measures its own bars against its opening equity; the days' costs add up to the run's.
    for prev, r in itertools.pairwise(days):
        assert r.metrics["opening_equity"] == prev.metrics["final_equity"]
    for kind, value in whole.costs.items():
        assert sum(r.costs[kind] for r in days) == pytest.approx(value, rel=1e-9, abs=1e-6), kind
    # The range's metrics from the concatenated curve are the continuous run's, bit for bit.
    position = np.concatenate([r.equity["position"].to_numpy() for r in days])
    again = compute_metrics(
        equity,
        periods_per_year=days[0].records.market.periods_per_year,
        capital=days[0].metrics["opening_equity"],
        position=position,
    )
    for key in EQUITY_METRICS:
        assert again[key] == whole.metrics[key] or (np.isnan(again[key]) and np.isnan(whole.metrics[key])), (
            key
        )


def _market(seed: int, days: int = 3) -> tuple[Market, np.random.Generator]:
    """Volatile 1-minute bars over a few UTC days with a hole in time and untradable bars."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    ts = T0 + np.arange(n, dtype=np.int64) * 60 * US
    bn = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, n)))
    conv = 1350.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n)))
    kr = bn * conv * (1.03 + 0.01 * rng.standard_normal(n))
    m = market_from_arrays(
        ts, kr, bn, conv, kr_volume=rng.gamma(2.0, 3.0, n), bn_volume=rng.gamma(2.0, 30.0, n)
    )
    keep = np.ones(n, dtype=np.bool_)
    keep[700:737] = False  # a 37-minute hole inside the first day
    m = m.replace(
        **{
            k: getattr(m, k)[keep]
            for k in ("ts", "premium", "kr_close", "bn_close", "conv", "kr_volume", "bn_volume")
        },
        fx_ts=m.fx_ts[keep],
        fx_rate=m.fx_rate[keep],
        tradable=rng.random(int(keep.sum())) > 0.05,
    )
    return m, rng


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize(
    ("mode", "hedge"), [("spread", "perp"), ("spread", "spot"), ("binance_only", "perp")]
)
def test_days_run_one_by_one_equal_the_continuous_run(mode: str, hedge: str, flat: bool) -> None:
    # Positions held over midnight, coins in flight at a day end (slow transfers, small inventory),
    # funding, the impact window reaching back into the day before: all carried.
    m, rng = _market(11 + len(mode) + len(hedge))
    levels = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], m.n // 30 + 1)
    target = np.repeat(levels, rng.geometric(1 / 90, levels.size))[: m.n]
    target = np.concatenate([target, np.zeros(m.n - target.size)])
    target[1200:1300] = 1.0
    target[1300:1450] = -1.0  # held across the first midnight, selling more than the Korean inventory
    sig = pl.DataFrame({"ts": m.ts_series(), "target": target})
    cfg = BacktestConfig(
        mode=mode,
        hedge=hedge,
        inventory_fraction=0.3,
        flat_at_day_end=flat,
        costs=dataclasses.replace(CostConfig(), transfer=TransferModel(delay_s=6 * 3600)),
    )
    for run in (run_vectorized, run_event_driven):
        whole = run(m, sig, cfg)
        days = _chain(run, _days(m), sig, cfg)
        _assert_same_run(days, whole)
        closings = [r.closing for r in days[:-1]]
        assert flat or any(not c.flat for c in closings)  # a position did cross midnight
        if mode == "spread":
            assert any(c.state[K.S_FLIGHT_QTY] > 0 for c in closings)  # and coins in flight
    # The engines agree on the chained days too.
    vec, ev = _chain(run_vectorized, _days(m), sig, cfg), _chain(run_event_driven, _days(m), sig, cfg)
    for a, b in zip(vec, ev, strict=True):
        assert a.trades.select("ts", "venue", "side").equals(b.trades.select("ts", "venue", "side"))
        np.testing.assert_allclose(a.records.equity, b.records.equity, rtol=1e-9)


def _book_days() -> tuple[Market, pl.DataFrame, BacktestConfig]:
    """One-minute bars 23:57..00:02 over midnight, books every 10 s; limit orders that rest for minutes."""
    ts = T0 - 3 * 60 * US + np.arange(6, dtype=np.int64) * 60 * US
    bts = ts[0] + np.arange(0, 6 * 60, 10, dtype=np.int64) * US
    k = len(bts)
    lvl = np.arange(10)
    drift = np.linspace(0.0, 1.5, k)[:, None]
    ask_px = 100.5 + lvl + drift
    bid_px = 99.5 - lvl + drift
    sz = np.full((k, 10), 3.0)
    book = Book(bts, bid_px, sz, ask_px, sz.copy())
    m = market_from_arrays(
        ts, np.full(6, 100.0), np.full(6, 0.1), np.full(6, 1000.0), kr_book=book, bn_book=book
    )
    cfg = BacktestConfig(
        capital_krw=1000.0,
        capital_usdt=1.0,
        fill="book",
        order_type="limit",
        latency_ms=20_000,
        limit_offset_bps=60.0,
        limit_ttl_s=240,
        flat_at_day_end=False,
        costs=CostConfig.free(),
    )
    sig = pl.DataFrame({"ts": m.ts_series(), "target": [0.0, 0.0, 1.0, 1.0, 0.5, 0.5]})
    return m, sig, cfg


def test_working_orders_carry_over_midnight() -> None:
    m, sig, cfg = _book_days()
    whole = run_event_driven(m, sig, cfg)
    days = _chain(run_event_driven, _days(m), sig, cfg)
    assert days[0].closing.orders.shape[0] > 0  # sent before midnight, still working after it
    cat = pl.concat([r.trades for r in days])
    assert cat.equals(whole.trades) and days[1].trades.height > 0
    # A carried order's fill names the bar it was decided at, the day before.
    assert days[1].trades["bar_ts"].min() < m.ts_series()[3]
    assert np.array_equal(np.concatenate([r.records.equity for r in days]), whole.records.equity)
    assert np.array_equal(days[-1].closing.state, whole.closing.state)
    with pytest.raises(ValueError, match="working order"):
        run_vectorized(_days(m)[1], sig.tail(3), cfg, start=days[0].closing)


def test_signal_rules_continue_from_their_state() -> None:
    rng = np.random.default_rng(3)
    prem = 0.03 + np.cumsum(rng.normal(0, 0.001, 3000))
    prem[rng.random(3000) < 0.05] = np.nan
    whole, z_whole = zscore_targets(prem, 120, 1.5, 0.3, 1.0)
    state = zscore_state(120)
    parts = [
        zscore_targets(prem[a:b], 120, 1.5, 0.3, 1.0, state) for a, b in ((0, 50), (50, 1700), (1700, 3000))
    ]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), z_whole, equal_nan=True)
    assert np.count_nonzero(np.diff(whole)) > 10
    with pytest.raises(ValueError, match="120 bars"):
        zscore_targets(prem, 60, 1.5, 0.3, 1.0, state)
    edge = np.clip(rng.normal(0, 0.2, 3000), -1, 1)
    full = prediction_targets(edge, 0.1, 0.05, 7, 0.25)
    st = prediction_state()
    cut = np.concatenate(
        [prediction_targets(edge[a:b], 0.1, 0.05, 7, 0.25, st) for a, b in ((0, 999), (999, 3000))]
    )
    assert np.array_equal(cut, full)


def test_zscore_signals_over_days_equal_one_run() -> None:
    m, _ = _market(5, days=2)
    whole = zscore_signals(m, window=90, entry_z=1.0, exit_z=0.2)
    state = zscore_state(90)
    days = [zscore_signals(d, window=90, entry_z=1.0, exit_z=0.2, state=state) for d in _days(m)]
    assert pl.concat(days).equals(whole)


def test_a_closing_state_only_continues_its_own_run() -> None:
    m, rng = _market(2, days=2)
    sig = pl.DataFrame({"ts": m.ts_series(), "target": rng.choice([-1.0, 0.0, 1.0], m.n)})
    cfg = BacktestConfig(flat_at_day_end=False)
    d1, d2 = _days(m)
    s1 = sig.head(d1.n)
    s2 = sig.tail(d2.n)
    first = run_vectorized(d1, s1, cfg)
    state = ClosingState.from_bytes(first.closing.to_bytes())
    assert np.array_equal(state.state, first.closing.state) and state.equity == first.closing.equity
    with pytest.raises(ValueError, match="not after the state's last bar"):
        run_vectorized(d1, s1, cfg, start=state)
    with pytest.raises(ValueError, match="ETH"):
        run_vectorized(d2.replace(coin="ETH"), s2, cfg, start=state)
    other = BacktestConfig(
        flat_at_day_end=False,
        costs=dataclasses.replace(CostConfig(), impact=dataclasses.replace(CostConfig().impact, coef=0.1)),
    )
    with pytest.raises(ValueError, match="impact_coef"):
        run_vectorized(d2, s2, other, start=state)
    # A missing stretch between the state and the market is said, not hidden.
    later = run_vectorized(
        d2.replace(
            **{
                k: getattr(d2, k)[10:]
                for k in (
                    "ts",
                    "premium",
                    "kr_close",
                    "bn_close",
                    "conv",
                    "kr_volume",
                    "bn_volume",
                    "tradable",
                )
            }
        ),
        s2.tail(d2.n - 10),
        cfg,
        start=state,
    )
    assert any("10 missing bar" in note for note in later.notes)
