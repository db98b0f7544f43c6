"""The vectorized engine against vectorbt, and the metrics against empyrical (the `ref` extra).

vectorbt runs the trade kimp documents (docs/backtesting.md, "The trade"): a target ``s`` is
``|s| x base / Korean price`` coins per leg (``base`` the smaller capital, in KRW), each leg filled at
the bar close moved by the fixed slippage and charged the taker fee, the Binance leg's PnL converted at
each bar's rate, every position closed at the last bar of a UTC day. Fills, fees and the equity curve
must agree to 1e-9: a long/flat strategy on the Korean leg alone and the spread strategy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kimp.backtest import (
    market_from_arrays,
    run_vectorized,
    zscore_signals,
)
from kimp.backtest.market import US, Market

vbt = pytest.importorskip("vectorbt", reason="the ref extra is not installed (make setup installs it)")
empyrical = pytest.importorskip("empyrical", reason="the ref extra is not installed (make setup installs it)")

# The benchmark's vectorbt side (its SAME_TRADE config and adapter) is what this test checks.
_spec = importlib.util.spec_from_file_location(
    "bench_backtest", Path(__file__).parents[1] / "benchmarks" / "bench_backtest.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _market(days: int = 3, seed: int = 5) -> Market:
    rng = np.random.default_rng(seed)
    n = days * 1440
    ts = np.datetime64("2024-03-01T00:00:00", "us").astype(np.int64) + np.arange(n, dtype=np.int64) * 60 * US
    bn = 60_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    conv = 1350.0 * np.exp(np.cumsum(rng.normal(0.0, 0.00005, n)))
    prem = 0.03 + np.cumsum(rng.normal(0.0, 0.0003, n)) * 0.2
    return market_from_arrays(ts, (1.0 + prem) * bn * conv, bn, conv)


@pytest.mark.parametrize(("mode", "long_only"), [("kr_only", True), ("spread", False)])
def test_vectorized_engine_equals_vectorbt(mode: str, long_only: bool) -> None:
    market = _market()
    target = zscore_signals(market, window=120, entry_z=1.5, exit_z=0.3)["target"].to_numpy()
    if long_only:
        target = np.maximum(-target, 0.0)  # long the Korean leg when the premium is cheap, else flat
    cfg = dataclasses.replace(bench.SAME_TRADE, mode=mode)
    signals = zscore_signals(market, window=120).with_columns(target=target)
    ours = run_vectorized(market, signals, cfg)
    theirs = bench.vectorbt_run(market, target, cfg)()
    assert theirs["fills"] > 20
    bench.assert_same_results(ours, theirs)  # fills, fees, equity to 1e-9; no order cut


def test_metrics_equal_empyrical() -> None:
    market = _market(days=5, seed=9)
    result = run_vectorized(
        market, zscore_signals(market, window=120, entry_z=1.5, exit_z=0.3), bench.SAME_TRADE
    )
    e = result.equity["equity"].to_numpy()
    capital = bench.SAME_TRADE.capital_krw + bench.SAME_TRADE.capital_usdt * market.conv[0]
    returns = e / np.concatenate([[capital], e[:-1]]) - 1.0
    ppy = market.periods_per_year
    m = result.metrics
    expected = {
        "total_return": empyrical.cum_returns_final(returns),
        "annualized_return": empyrical.annual_return(returns, annualization=ppy),
        "volatility": empyrical.annual_volatility(returns, annualization=ppy),
        "sharpe": empyrical.sharpe_ratio(returns, annualization=ppy),
        "sortino": empyrical.sortino_ratio(returns, annualization=ppy),
        "max_drawdown": -empyrical.max_drawdown(returns),
        "calmar": empyrical.calmar_ratio(returns, annualization=ppy),
    }
    assert m["max_drawdown"] > 0 and m["round_trips"] > 5
    for key, value in expected.items():
        assert m[key] == pytest.approx(float(value), rel=1e-9), key
