"""Indicators against independent libraries: TA-Lib and `ta` (the `ref` extra; `make setup` installs it).

On hourly bars without gaps, where a 1h timeframe is one bar (TA-Lib's periods are bars), every
indicator TA-Lib or `ta` has equals kimp's to 1e-6. Where kimp's definition differs on purpose (the
table "Definitions that differ from TA-Lib" in docs/features.md), the test pins the difference: kimp's
formula built from TA-Lib's own pieces, and TA-Lib's function shown to differ.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from kimp.features import FeatureConfig, FeatureInputs, build_features
from kimp.testing import synthetic_inputs

talib = pytest.importorskip("talib", reason="the ref extra is not installed (make setup installs it)")
ta = pytest.importorskip("ta", reason="the ref extra is not installed (make setup installs it)")

START = datetime(2024, 2, 1, tzinfo=UTC)
DAYS = 8
DAY0 = START + timedelta(days=DAYS - 1)
TOL = {"rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    inputs: FeatureInputs = synthetic_inputs(
        START, DAYS, interval_s=3600, coins=("BTC",), orderbook_every_s=None, kr_venues=("upbit",)
    )
    frame = build_features(
        inputs,
        start=DAY0,
        end=DAY0 + timedelta(days=1),
        config=FeatureConfig(coins=("BTC",), kr_venues=("upbit",)),
    ).frame
    assert inputs.candles is not None
    bars = inputs.candles.filter((pl.col("venue") == "upbit") & (pl.col("base") == "BTC")).sort("ts")
    return frame, {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}


def _last_day(x: np.ndarray | pd.Series) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)[-24:]


def _ours(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).to_numpy()


def test_returns_and_moving_averages_equal_talib(data) -> None:
    frame, b = data
    c = b["close"]
    np.testing.assert_allclose(_ours(frame, "kr_ret_1h"), _last_day(talib.ROCP(c, 1)), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_ret_4h"), _last_day(talib.ROCP(c, 4)), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_logret_1d"), _last_day(np.log(talib.ROCR(c, 24))), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_sma_dev_4h"), _last_day(c / talib.SMA(c, 4) - 1), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_sma_dev_1d"), _last_day(c / talib.SMA(c, 24) - 1), **TOL)


def test_bollinger_and_stochastic_equal_talib(data) -> None:
    frame, b = data
    c, h, lo = b["close"], b["high"], b["low"]
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0)
    np.testing.assert_allclose(_ours(frame, "kr_bb_pctb_1h"), _last_day((c - lower) / (upper - lower)), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_bb_width_1h"), _last_day((upper - lower) / middle), **TOL)
    fastk, fastd = talib.STOCHF(h, lo, c, fastk_period=14, fastd_period=3, fastd_matype=0)
    np.testing.assert_allclose(_ours(frame, "kr_stoch_k_1h"), _last_day(fastk), **TOL)
    np.testing.assert_allclose(_ours(frame, "kr_stoch_d_1h"), _last_day(fastd), **TOL)


def test_vwap_money_flow_and_ichimoku_equal_ta(data) -> None:
    frame, b = data
    s = {k: pd.Series(v) for k, v in b.items()}
    vwap = ta.volume.VolumeWeightedAveragePrice(s["high"], s["low"], s["close"], s["volume"], window=4)
    np.testing.assert_allclose(
        _ours(frame, "kr_vwap_dist_4h"),
        _last_day(s["close"] / vwap.volume_weighted_average_price() - 1),
        **TOL,
    )
    cmf = ta.volume.ChaikinMoneyFlowIndicator(s["high"], s["low"], s["close"], s["volume"], window=24)
    np.testing.assert_allclose(_ours(frame, "kr_cmf_1d"), _last_day(cmf.chaikin_money_flow()), **TOL)
    ichi = ta.trend.IchimokuIndicator(s["high"], s["low"], window1=9, window2=26, window3=52)
    np.testing.assert_allclose(
        _ours(frame, "kr_ichi_tenkan_1h"), _last_day(s["close"] / ichi.ichimoku_conversion_line() - 1), **TOL
    )
    np.testing.assert_allclose(
        _ours(frame, "kr_ichi_kijun_1h"), _last_day(s["close"] / ichi.ichimoku_base_line() - 1), **TOL
    )


def test_rsi_is_cutlers_not_wilders(data) -> None:
    """kimp's RSI averages gains and losses with simple means (Cutler); TA-Lib's RSI smooths them
    recursively (Wilder). kimp's equals Cutler's built from TA-Lib's SMA, and differs from talib.RSI."""
    frame, b = data
    c = b["close"]
    d = np.diff(c, prepend=np.nan)
    up, down = talib.SMA(np.clip(d, 0, None), 14), talib.SMA(np.clip(-d, 0, None), 14)
    cutler = 100 * up / (up + down)
    ours = _ours(frame, "kr_rsi14_1h")
    np.testing.assert_allclose(ours, _last_day(cutler), **TOL)
    assert np.max(np.abs(ours - _last_day(talib.RSI(c, 14)))) > 0.5  # a different indicator


def test_macd_is_relative_and_truncated(data) -> None:
    """kimp's MACD line is divided by the slow EMA, and its EMAs are normalized means over two spans;
    TA-Lib's EMAs are recursive from a simple-mean seed, in price units. Close, not equal."""
    frame, b = data
    c = b["close"]
    macd, _, _ = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    relative = _last_day(macd / talib.EMA(c, 26))
    ours = _ours(frame, "kr_macd_1h")
    assert np.corrcoef(ours, relative)[0, 1] > 0.99
    assert np.max(np.abs(ours - relative)) > 1e-7  # not TA-Lib's definition
