"""Each cost model against a hand-computed example (tiny markets built from arrays)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from kimp.backtest import (
    BacktestConfig,
    CostConfig,
    FundingModel,
    FxConversionModel,
    ImpactModel,
    SlippageModel,
    TransferModel,
    VenueFees,
    market_from_arrays,
    run_event_driven,
    run_vectorized,
)
from kimp.backtest import kernel as K

US = 1_000_000
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * US
FREE = CostConfig.free()


def market(kr, bn, conv, *, interval_s=60, start=T0, volume=None):
    n = len(kr)
    ts = start + np.arange(n, dtype=np.int64) * interval_s * US
    vol = None if volume is None else np.full(n, float(volume))
    return market_from_arrays(
        ts,
        np.array(kr, float),
        np.array(bn, float),
        np.full(n, float(conv)) if np.isscalar(conv) else np.array(conv, float),
        interval_s=interval_s,
        kr_volume=vol,
        bn_volume=vol,
    )


def signals(m, target):
    return pl.DataFrame({"ts": m.ts_series(), "target": np.array(target, float)})


def kr_only(costs: CostConfig, **kw) -> BacktestConfig:
    return BacktestConfig(mode="kr_only", capital_krw=1e6, capital_usdt=1000, costs=costs, **kw)


CAPITAL_TOTAL = 1e6 + 1000 * 1000.0  # KRW capital + USDT capital at the first conversion rate


def test_taker_fees_on_a_round_trip() -> None:
    m = market([100, 100, 110], [1, 1, 1], 1000)
    cfg = kr_only(dataclasses.replace(FREE, upbit=VenueFees(0.0002, 0.0005)))
    r = run_vectorized(m, signals(m, [1, 1, 0]), cfg)
    # Buy 1e6 / 100 = 10,000 coins at 100, sell at 110: fees 0.05% of 1,000,000 and of 1,100,000.
    assert r.trades["qty"].to_list() == [10_000, 10_000]
    assert r.costs["fees"] == pytest.approx(500 + 550)
    assert r.equity["equity"][-1] == pytest.approx(CAPITAL_TOTAL + 100_000 - 1050)
    assert r.trades["liquidity"].to_list() == ["taker", "taker"]


def test_bithumb_default_fee_is_the_uncouponed_rate() -> None:
    assert CostConfig().bithumb.taker == 0.0025
    assert CostConfig().binance_perp == VenueFees(0.0002, 0.0005)


@pytest.mark.parametrize(
    ("kind", "fixed_bps", "coef", "volume"),
    [
        ("fixed", 10.0, 0.0, None),  # 10 bp
        ("linear", 0.0, 0.01, 100_000),  # 0.01 x 10,000 / 100,000 = 10 bp
        ("sqrt", 0.0, 0.01, 1_000_000),  # 0.01 x sqrt(10,000 / 1,000,000) = 10 bp
    ],
)
def test_slippage_models(kind: str, fixed_bps: float, coef: float, volume: float | None) -> None:
    m = market([100, 100, 110], [1, 1, 1], 1000, volume=volume)
    cfg = kr_only(
        dataclasses.replace(FREE, slippage=SlippageModel(kind=kind, fixed_bps=fixed_bps, coef=coef))
    )  # type: ignore[arg-type]
    r = run_vectorized(m, signals(m, [1, 1, 0]), cfg)
    assert r.trades["price"].to_list() == pytest.approx([100.1, 109.89])
    assert r.costs["slippage"] == pytest.approx(10_000 * 100 * 0.001 + 10_000 * 110 * 0.001)
    assert r.equity["equity"][-1] == pytest.approx(CAPITAL_TOTAL + 100_000 - 2100)


def test_impact_model_scales_with_volatility_and_root_size() -> None:
    cfg = kr_only(dataclasses.replace(FREE, impact=ImpactModel(coef=0.5)))
    P = cfg.params(kr_venue="upbit", coin="BTC", conv0=1000.0)
    S = K.init_state(P, 100.0, 1.0)
    trades = np.zeros((4, K.TRADE_COLS))
    n = K.bar_fill(S, P, 0, 10_000.0, 100.0, np.nan, 0.002, 40_000.0, 1000.0, 0, 0, trades, 0)
    # 0.5 x 0.002 x sqrt(10,000 / 40,000) = 5 bp
    assert n == 1
    assert trades[0, 4] == pytest.approx(100.05)
    assert S[K.C_IMPACT] == pytest.approx(10_000 * 100 * 0.0005)
    assert S[K.S_CASH_KR] == pytest.approx(-10_000 * 100.05)


def test_window_sigma_uses_only_past_returns() -> None:
    close = np.array([100.0, 101.0, 99.0, 102.0, 98.0, 97.0])
    r = close[1:] / close[:-1] - 1  # r[k] is bar k + 1's return
    assert K.window_sigma(close, 0, 2) == 0 and K.window_sigma(close, 1, 2) == 0  # fewer than two returns
    assert K.window_sigma(close, 2, 2) == pytest.approx(np.std(r[0:2], ddof=1))
    assert K.window_sigma(close, 3, 2) == pytest.approx(np.std(r[1:3], ddof=1))
    for i in range(2, close.size):  # odd and even windows: the two-lane sums' tail
        for w in (2, 3, 4, 5):
            m = min(i, w)
            assert K.window_sigma(close, i, w) == pytest.approx(np.std(r[i - m : i], ddof=1), rel=1e-12)
    future = close.copy()
    future[4:] = [500.0, 1.0]  # later bars do not move bar 3's volatility
    assert K.window_sigma(future, 3, 3) == K.window_sigma(close, 3, 3)


@pytest.mark.parametrize(("target", "expected"), [(-1.0, 100.0), (1.0, -100.0)])
def test_perp_funding_paid_by_longs_received_by_shorts(target: float, expected: float) -> None:
    # 1-hour bars opening 06:00, 07:00, 08:00 UTC; the 08:00 funding instant is the close of the second.
    m = market([100_000] * 3, [100] * 3, 1000, interval_s=3600, start=T0 + 6 * 3600 * US)
    costs = dataclasses.replace(FREE, funding=FundingModel(rate=0.0001))
    cfg = BacktestConfig(capital_krw=1e6, capital_usdt=1000, hedge="perp", costs=costs)
    for run in (run_vectorized, run_event_driven):
        r = run(m, signals(m, [target, target, 0]), cfg)
        # 10 coins per leg; short premium = long 10 perp: pays 0.01% x 10 x 100 USDT = 0.1 USDT = 100 KRW.
        assert r.costs["funding"] == pytest.approx(expected)
        assert r.equity["equity"][-1] == pytest.approx(CAPITAL_TOTAL - expected)


def test_fx_conversion_cost_on_the_binance_pnl() -> None:
    m = market([1, 1, 1], [100, 110, 110], 1000)
    cfg = BacktestConfig(
        mode="binance_only",
        capital_krw=1e6,
        capital_usdt=1000,
        costs=dataclasses.replace(FREE, fx=FxConversionModel(0.001)),
    )
    r = run_vectorized(m, signals(m, [1, 1, 0]), cfg)
    # 10 coins bought at 100, sold at 110: +100 USDT = 100,000 KRW, less 0.1% to convert it.
    assert r.costs["fx_conversion"] == pytest.approx(100.0)
    assert r.equity["equity"][-1] == pytest.approx(CAPITAL_TOTAL + 100_000 - 100)


def test_inventory_cut_starts_a_transfer_that_lands_after_its_delay() -> None:
    m = market([100_000] * 6, [100] * 6, 1000)
    costs = dataclasses.replace(FREE, transfer=TransferModel(delay_s=120, fee_btc=0.0005))
    cfg = BacktestConfig(capital_krw=1e6, capital_usdt=1000, inventory_fraction=0.5, costs=costs)
    for run in (run_vectorized, run_event_driven):
        r = run(m, signals(m, [-1] * 5 + [0]), cfg)
        kr = r.equity["kr_qty"].to_list()
        # Wanted 10 coins short the Korean leg, held 5 there: cut to 5, and 5 sent from Binance (its 5 plus
        # the 5 just bought), landing 4.9995 two bars later.
        assert kr[:3] == pytest.approx([-5, -5, -9.9995])
        assert r.transfers.height == 1
        assert r.transfers["qty"][0] == pytest.approx(5.0)
        assert r.transfers["to_venue"][0] == "upbit"
        assert r.costs["transfer"] == pytest.approx(0.0005 * 100 * 1000)
        assert [x["reason"] for x in r.rejections] == ["inventory"]
        assert r.rejections[0]["allowed"] == pytest.approx(-0.5)


def test_order_above_capital_is_cut_and_recorded() -> None:
    m = market([100, 100, 100], [1, 1, 1], 1000)
    r = run_vectorized(m, signals(m, [1.5, 1.5, 0]), kr_only(FREE))
    assert r.equity["kr_qty"][0] == pytest.approx(10_000)  # the whole KRW capital, no more
    assert r.rejections == [
        {
            "ts": m.ts_series()[1],  # decided at the close of the first bar
            "bar_ts": m.ts_series()[0],
            "requested": 1.5,
            "allowed": pytest.approx(1.0),
            "reason": "capital_limit",
        }
    ]
    assert r.metrics["rejections"] == 1


def test_configs_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="taker fee"):
        VenueFees(0.0, 0.5)
    with pytest.raises(ValueError, match="slippage kind"):
        SlippageModel(kind="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capital"):
        BacktestConfig(capital_krw=0)
    with pytest.raises(ValueError, match="funding"):
        FundingModel(rate=0.5)
