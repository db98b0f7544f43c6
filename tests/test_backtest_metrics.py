"""Metrics against hand-computed series, the z-score rule by hand, and the plots."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from kimp.backtest import (
    BacktestConfig,
    compute_metrics,
    equity_png,
    market_from_arrays,
    premium_trades_png,
    run_vectorized,
)
from kimp.backtest.metrics import round_trip_pnls
from kimp.backtest.signals import zscore_targets


def test_metrics_of_a_hand_computed_curve() -> None:
    equity = np.array([110.0, 99.0, 121.0, 121.0])
    position = np.array([1.0, 1.0, 0.0, -1.0])
    m = compute_metrics(
        equity,
        periods_per_year=4,
        capital=100.0,
        position=position,
        traded_notional=250.0,
        costs={"fees": 2.0},
    )
    r = np.array([0.10, -0.10, 22 / 99, 0.0])
    assert m["total_return"] == pytest.approx(0.21)
    assert m["annualized_return"] == pytest.approx(0.21)  # four periods are one year here
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * 2)
    assert m["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 4) * 2)
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert m["calmar"] == pytest.approx(0.21 / 0.1)
    # Round trips: long over bars 0-1 closed at bar 2 (121 - 100 = +21); short from bar 3, open (121 - 121 = 0).
    assert round_trip_pnls(equity, position, 100.0).tolist() == pytest.approx([21.0, 0.0])
    assert m["round_trips"] == 2 and m["win_rate"] == pytest.approx(0.5)
    assert math.isnan(m["profit_factor"])  # no losing round trip: undefined, not a made-up number
    assert m["turnover"] == pytest.approx(2.5) and m["exposure"] == pytest.approx(0.75)
    assert m["cost_fees"] == 2.0


def test_profit_factor_and_flat_curve() -> None:
    equity = np.array([100.0, 104.0, 104.0, 101.0, 101.0])
    position = np.array([0.0, 1.0, 0.0, -1.0, 0.0])
    m = compute_metrics(equity, periods_per_year=365, capital=100.0, position=position)
    assert m["round_trips"] == 2 and m["profit_factor"] == pytest.approx(4.0 / 3.0)  # +4 then -3
    flat = compute_metrics(np.full(5, 100.0), periods_per_year=365, capital=100.0)
    assert flat["total_return"] == 0 and math.isnan(flat["sharpe"]) and flat["max_drawdown"] == 0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 1001])
def test_statistics_equal_their_definitions_on_random_curves(n: int) -> None:
    # The statistics are summed in lanes and the drawdown is taken once per peak segment: compare with
    # the definitions evaluated bar by bar in NumPy, on curves that rise, fall below zero and recover.
    rng = np.random.default_rng(n)
    capital = 1_000.0
    equity = capital + np.cumsum(rng.normal(0.0, 300.0, n))
    position = rng.choice([-1.0, 0.0, 2.0], n)
    m = compute_metrics(equity, periods_per_year=100, capital=capital, position=position)
    r = equity / np.concatenate([[capital], equity[:-1]]) - 1.0
    peak = np.maximum.accumulate(np.concatenate([[capital], equity]))[1:]
    assert m["max_drawdown"] == max(0.0, float(np.max(1.0 - equity / peak)))  # exactly: same roundings
    assert m["exposure"] == pytest.approx(float(np.mean(position != 0)))
    if n > 1:
        assert m["volatility"] == pytest.approx(r.std(ddof=1) * 10, rel=1e-12)
        assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * 10, rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    if downside > 0:
        assert m["sortino"] == pytest.approx(r.mean() / downside * 10, rel=1e-9)
    else:  # no losing bar: undefined
        assert math.isnan(m["sortino"])


def test_constant_returns_have_no_volatility() -> None:
    # Equal returns have a standard deviation of exactly 0: Sharpe undefined (NaN), not rounding noise.
    equity = 100.0 * 2.0 ** np.arange(1, 40)
    m = compute_metrics(equity, periods_per_year=365, capital=100.0)
    assert m["volatility"] == 0 and math.isnan(m["sharpe"]) and m["max_drawdown"] == 0


def test_zscore_rule_by_hand() -> None:
    prem = np.array([0.0, 0.0, 0.0, 1.0, 1.0, -1.0, np.nan, 0.0])
    target, z = zscore_targets(prem, 3, 1.0, 0.5, 1.0)
    # Window 3: bar 3 sees (0, 0, 1): z = (1 - 1/3) / std -> 1.15 > 1: short. Bar 4 (0, 1, 1): z = 0.58,
    # still above exit 0.5: hold. Bar 5 (1, 1, -1): z = -1.15 < -1: flip long. Bar 6 unknown: hold, and
    # its statistics repeat -1. Bar 7 (-1, -1, 0): z = +1.15: flip short.
    assert z[3] == pytest.approx((1 - 1 / 3) / np.std([0, 0, 1], ddof=1))
    assert target.tolist() == [0, 0, 0, -1, -1, 1, 1, -1]


def test_plots_are_png() -> None:
    n = 120
    ts = 1_709_251_200_000_000 + np.arange(n, dtype=np.int64) * 60_000_000
    kr = 100_000 * (1 + 0.01 * np.sin(np.arange(n) / 10))
    m = market_from_arrays(ts, kr, np.full(n, 70.0), np.full(n, 1350.0))
    sig = pl.DataFrame({"ts": m.ts_series(), "target": np.sign(np.sin(np.arange(n) / 7))})
    r = run_vectorized(m, sig, BacktestConfig())
    for png in (equity_png(r), premium_trades_png(r)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
