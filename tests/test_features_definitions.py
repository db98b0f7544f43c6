"""Feature definitions checked by hand on hourly inputs: MACD scale, windowed sums after a missing bar,
volume rates, one-bar windows, and each leg's indicators when the other leg is missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.features import FeatureConfig, FeatureInputs, build_features
from kimp.features.kernels import windowed_ewm
from kimp.testing import synthetic_inputs

START = datetime(2024, 2, 1, tzinfo=UTC)
DAYS = 9  # 8 days of history before the day under test: the 7-day volume baseline fits
DAY0 = START + timedelta(days=DAYS - 1)
CONFIG = FeatureConfig(coins=("BTC",), kr_venues=("upbit",))
K = 24 * (DAYS - 1) + 10  # the bar knocked out (10:00 on the day under test)


@pytest.fixture(scope="module")
def inputs() -> FeatureInputs:
    return synthetic_inputs(
        START, DAYS, interval_s=3600, coins=("BTC",), orderbook_every_s=None, kr_venues=("upbit",)
    )


def _build(inputs: FeatureInputs) -> pl.DataFrame:
    return build_features(inputs, start=DAY0, end=DAY0 + timedelta(days=1), config=CONFIG).frame


def _leg(candles: pl.DataFrame, venue: str) -> pl.Expr:
    return pl.col("venue") == venue


def _edit(frame: pl.DataFrame, where: pl.Expr, **values: object) -> pl.DataFrame:
    """``frame`` with the columns in ``values`` replaced on the rows ``where`` (NaN = missing input)."""
    return frame.with_columns(
        [
            pl.when(where).then(pl.lit(v)).otherwise(pl.col(c)).cast(frame.schema[c]).alias(c)
            for c, v in values.items()
        ]
    )


def _at(frame: pl.DataFrame, ts: datetime, name: str) -> float | None:
    return frame.filter(pl.col("ts") == ts)[name].item()


def _bar(i: int) -> datetime:
    return START + timedelta(hours=i)


def _kr_candles(inputs: FeatureInputs) -> pl.DataFrame:
    assert inputs.candles is not None
    return inputs.candles.filter((pl.col("venue") == "upbit") & (pl.col("base") == "BTC")).sort("ts")


def test_price_macd_is_relative_to_the_slow_ema(inputs: FeatureInputs) -> None:
    """kr and bn MACDs are (EMA12 - EMA26) / EMA26: free of the price's scale (KRW and USDT alike)."""
    assert inputs.premium is not None and inputs.candles is not None
    base = _build(inputs)
    kr = inputs.premium["kr_close"].to_numpy()
    ema = {span: windowed_ewm(kr, 2 / (span + 1), 2 * span, span) for span in (12, 26)}
    expected = (ema[12] - ema[26]) / ema[26]
    got = base["kr_macd_1h"].to_numpy()
    np.testing.assert_allclose(got, expected[-24:], rtol=1e-5)
    # the same prices in units 1,000 times smaller: the same MACD line, signal and histogram
    scaled = FeatureInputs(
        premium=inputs.premium.with_columns(pl.col("kr_close") * 1000),
        candles=inputs.candles.with_columns(
            [
                pl.when(_leg(inputs.candles, "upbit")).then(pl.col(c) * 1000).otherwise(pl.col(c)).alias(c)
                for c in ("open", "high", "low", "close")
            ]
        ),
        fx=inputs.fx,
    )
    other = _build(scaled)
    for name in ("kr_macd_1h", "kr_macd_signal_1h", "kr_macd_hist_1h", "kr_macd_4h", "kr_macd_signal_4h"):
        np.testing.assert_allclose(
            other[name].to_numpy(), base[name].to_numpy(), rtol=1e-4, atol=1e-8, err_msg=name
        )
    assert 1e-4 < np.nanmax(np.abs(base["bn_macd_1h"].to_numpy())) < 0.1  # a fraction, not USDT


def test_vwap_and_cmf_use_the_same_bars_in_numerator_and_denominator(inputs: FeatureInputs) -> None:
    """A bar whose price is missing leaves both sums of VWAP and Chaikin money flow (its volume too)."""
    assert inputs.premium is not None and inputs.candles is not None
    at_k = (pl.col("ts") == _bar(K)) & (pl.col("venue") == "upbit")
    no_close = FeatureInputs(
        premium=_edit(inputs.premium, pl.col("ts") == _bar(K), kr_close=float("nan")),
        candles=_edit(inputs.candles, at_k, close=float("nan")),
        fx=inputs.fx,
    )
    frame = _build(no_close)
    bars = _kr_candles(no_close)
    h, lo, c, v = (bars[x].to_numpy() for x in ("high", "low", "close", "volume"))
    t = K + 1
    window = slice(t - 3, t + 1)  # 4h = 4 bars, bar K inside
    tp = (h + lo + c)[window] / 3
    ok = np.isfinite(tp)
    assert not ok.all()
    vwap = np.sum(tp[ok] * v[window][ok]) / np.sum(v[window][ok])
    assert 1 + _at(frame, _bar(t), "kr_vwap_dist_4h") == pytest.approx(c[t] / vwap, rel=1e-6)

    no_high = FeatureInputs(
        premium=inputs.premium, candles=_edit(inputs.candles, at_k, high=float("nan")), fx=inputs.fx
    )
    frame = _build(no_high)
    bars = _kr_candles(no_high)
    h, lo, c, v = (bars[x].to_numpy() for x in ("high", "low", "close", "volume"))
    clv = ((c - lo) - (h - c)) / (h - lo)
    ok = np.isfinite(clv[window])
    assert not ok.all()
    cmf = np.sum(clv[window][ok] * v[window][ok]) / np.sum(v[window][ok])
    assert _at(frame, _bar(t), "kr_cmf_4h") == pytest.approx(cmf, rel=1e-5)


def test_volume_ratio_sums_the_bars_both_legs_have(inputs: FeatureInputs) -> None:
    assert inputs.premium is not None and inputs.candles is not None
    at_k = (pl.col("ts") == _bar(K)) & (pl.col("venue") == "binance")
    edited = FeatureInputs(
        premium=inputs.premium,
        candles=_edit(inputs.candles, at_k, volume=float("nan"), quote_volume=float("nan")),
        fx=inputs.fx,
    )
    frame = _build(edited)
    kr = _kr_candles(edited)
    bn = edited.candles.filter(_leg(edited.candles, "binance") & (pl.col("base") == "BTC")).sort("ts")
    usdkrw = edited.premium.sort("ts")["usdkrw"].to_numpy()
    kr_usd = kr["quote_volume"].to_numpy() / usdkrw
    bn_q = bn["quote_volume"].to_numpy()
    t = K + 1
    window = slice(t - 3, t + 1)
    ok = np.isfinite(bn_q[window])
    assert not ok.all()
    expected = np.log(np.sum(kr_usd[window][ok]) / np.sum(bn_q[window][ok]))
    assert _at(frame, _bar(t), "kr_bn_volume_ratio_4h") == pytest.approx(expected, rel=1e-5)


def test_volume_rate_1d_is_against_a_longer_baseline(inputs: FeatureInputs) -> None:
    frame = _build(inputs)
    v = _kr_candles(inputs)["volume"].to_numpy()
    rate = frame["kr_volume_rate_1d"].to_numpy()
    t = v.size - 1
    expected = np.log(v[t - 23 : t + 1].mean() / v[t - 167 : t + 1].mean())
    assert rate[-1] == pytest.approx(expected, rel=1e-5)
    assert np.unique(rate).size > 20 and np.unique(frame["bn_volume_rate_1d"].to_numpy()).size > 20


def test_one_bar_windows_are_not_representable(inputs: FeatureInputs) -> None:
    """On hourly bars a 1h mean, range or VWAP is the bar itself: null and reported, never constant."""
    result = build_features(inputs, start=DAY0, end=DAY0 + timedelta(days=1), config=CONFIG)
    frame = result.frame
    for name in ("kr_sma_dev_1h", "bn_sma_dev_1h", "prem_fx_dev_mean_1h", "prem_fx_range_pos_1h"):
        assert frame[name].null_count() == frame.height, name
    for name in ("kr_vwap_dist_1h", "kr_twap_dist_1h", "kr_vwap_twap_1h"):
        assert frame[name].null_count() == frame.height, name
    assert "one bar" in result.unavailable["momentum/1h"]
    assert "one bar" in result.unavailable["vwap/1h"]
    assert frame["kr_sma_dev_4h"].null_count() == 0 and frame["prem_fx_range_pos_4h"].null_count() == 0
    values = frame.drop("ts", "coin", "interval_s")
    # constant in these inputs by their nature: FX is published at every bar close (age 0), the
    # difficulty changes every two weeks, no synthetic headline names Bithumb
    by_data = {"fx_age_h", "onchain_difficulty", "onchain_difficulty_chg_1d", "sent_bithumb_count_1d"}
    constant = [c for c in values.columns if values[c].drop_nulls().n_unique() == 1 and c not in by_data]
    assert not constant, f"constant features on hourly bars: {constant}"


def test_each_legs_indicators_survive_the_other_leg_missing(inputs: FeatureInputs) -> None:
    """A Binance placeholder bar (zero volume, so the premium row is stale) leaves the Korean close and
    its indicators; a missing Korean bar (no premium row at all) leaves the Binance ones."""
    assert inputs.premium is not None and inputs.candles is not None
    base = _build(inputs)
    k_ts = _bar(K)
    bn_gone = FeatureInputs(
        premium=_edit(inputs.premium, pl.col("ts") == k_ts, stale=True, premium_fx=None, premium_usdt=None),
        candles=_edit(inputs.candles, (pl.col("ts") == k_ts) & _leg(inputs.candles, "binance"), volume=0.0),
        fx=inputs.fx,
    )
    frame = _build(bn_gone)
    for name in ("kr_ret_1h", "kr_rsi14_1h", "kr_macd_1h", "kr_bb_pctb_1h", "kr_logret_4h"):
        assert _at(frame, k_ts, name) == pytest.approx(_at(base, k_ts, name), rel=1e-6), name
    assert _at(frame, k_ts, "bn_ret_1h") is None and _at(frame, k_ts, "prem_fx") is None

    kr_gone = FeatureInputs(
        premium=inputs.premium.filter(pl.col("ts") != k_ts),
        candles=inputs.candles.filter(~((pl.col("ts") == k_ts) & _leg(inputs.candles, "upbit"))),
        fx=inputs.fx,
    )
    frame = _build(kr_gone)
    for name in ("bn_ret_1h", "bn_rsi14_1h", "bn_macd_1h", "bn_stoch_k_1h"):
        assert _at(frame, k_ts, name) == pytest.approx(_at(base, k_ts, name), rel=1e-6), name
    assert _at(frame, k_ts, "kr_ret_1h") is None
