"""build_features on a simulated day, on a slice of the real hourly samples, and on bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from kimp.errors import MarketDataError
from kimp.features import FeatureInputs, build_features, catalog
from kimp.testing import simulated_source_inputs, synthetic_inputs
from kimp.timeutil import day_start
from tests.conftest import SHARED_REAL

NAMES = [s.name for s in catalog()]
FAMILY = {s.name: s.family for s in catalog()}


def _no_nan(frame: pl.DataFrame) -> None:
    bad = frame.select((~pl.col(NAMES).is_finite()).sum()).row(0, named=True)
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


@pytest.fixture(scope="module")
def simulated() -> tuple[FeatureInputs, datetime]:
    days = [date(2024, 3, 4), date(2024, 3, 5)]
    return simulated_source_inputs(days), day_start(days[1])


def test_simulated_day(simulated: tuple[FeatureInputs, datetime]) -> None:
    inputs, start = simulated
    result = build_features(inputs, start=start, end=start + timedelta(days=1))
    frame = result.frame
    assert result.interval_s == 60 and result.kr_venue == {"BTC": "upbit", "ETH": "upbit"}
    assert frame.height == 2 * 1440 and frame.columns[:3] == ["ts", "coin", "interval_s"]
    assert frame.select("coin", "ts").equals(frame.select("coin", "ts").sort("coin", "ts"))
    assert frame["ts"].min() == start and frame["ts"].max() == start + timedelta(days=1, minutes=-1)
    _no_nan(frame)
    # one day of history: 1-day features have values, 7-day ones are null and reported as such
    assert frame["prem_fx_z_1d"].null_count() == 0 and frame["kr_ob_imbalance_l5"].null_count() == 0
    assert frame["prem_fx_z_7d"].null_count() == frame.height
    assert frame["news_tone_1d"].null_count() == 0 and frame["onchain_mvrv"].null_count() == 0
    assert "macro" in result.unavailable  # needs 5 days of look-back


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f"real samples not found at {SHARED_REAL}")
def test_real_hourly_slice_bithumb_binance() -> None:
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium

    src = FilesSource(SHARED_REAL)
    days = [date(2018, 1, 8) + timedelta(days=i) for i in range(3)]
    prem, candles, fx = [], [], []
    for d in days:
        fx_hist = pl.concat([src.fx(d - timedelta(days=n)) for n in range(7, -1, -1)])
        kr = {"bithumb": src.candles("bithumb", d)}
        bn = src.candles("binance", d)
        prem.append(compute_premium(kr, bn, fx_hist, day=d))
        candles += [kr["bithumb"], bn]
        fx.append(src.fx(d))
    inputs = FeatureInputs(premium=pl.concat(prem), candles=pl.concat(candles), fx=pl.concat(fx))
    start = day_start(days[-1])
    result = build_features(inputs, start=start, end=start + timedelta(days=1))
    frame = result.frame
    assert result.interval_s == 3600 and frame.height == 48 and result.kr_venue["BTC"] == "bithumb"
    _no_nan(frame)
    for family in ("orderbook", "onchain", "macro", "news"):
        assert "table not provided" in result.unavailable[family]
        assert all(frame[n].null_count() == frame.height for n in NAMES if FAMILY[n] == family)
    assert "not a whole number of 3600 s bars" in result.unavailable["returns/1m"]
    assert frame["kr_ret_1h"].null_count() == 0 and frame["prem_fx_z_1d"].null_count() == 0
    assert frame["kr_rsi14_1h"].null_count() == 0 and frame["kr_vwap_dist_1d"].null_count() == 0
    assert frame["prem_fx_venue_spread"].null_count() == frame.height  # one Korean venue only
    expected = inputs.premium.filter((pl.col("ts") >= start) & (pl.col("coin") == "BTC")).sort("ts")[
        "premium_fx"
    ]
    got = frame.filter(pl.col("coin") == "BTC")["prem_fx"]
    assert np.allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6)


@pytest.fixture(scope="module")
def small() -> tuple[FeatureInputs, datetime]:
    start = datetime(2024, 2, 1, tzinfo=UTC)
    return synthetic_inputs(start - timedelta(days=1), 2, interval_s=300, orderbook_every_s=60), start


def test_missing_table_and_column_name_the_families(small: tuple[FeatureInputs, datetime]) -> None:
    inputs, start = small
    assert inputs.candles is not None
    broken = FeatureInputs(
        premium=inputs.premium,
        candles=inputs.candles.drop("volume"),
        fx=inputs.fx,
        orderbook=None,
        onchain=inputs.onchain,
        macro=inputs.macro,
        news=inputs.news,
    )
    result = build_features(broken, start=start, end=start + timedelta(hours=6))
    assert "candles: missing columns ['volume']" in result.unavailable["volume"]
    assert "candles: missing columns ['volume']" in result.unavailable["liquidity"]
    assert result.unavailable["orderbook"] == "orderbook: table not provided"
    assert result.frame["kr_volume_rate_1h"].null_count() == result.frame.height  # null, never zero
    assert result.frame["kr_ret_1h"].null_count() < result.frame.height  # close comes from the premium


def test_missing_premium_is_an_error_naming_it(small: tuple[FeatureInputs, datetime]) -> None:
    inputs, start = small
    with pytest.raises(MarketDataError, match="premium table cannot be used") as err:
        build_features(
            FeatureInputs(premium=None, candles=inputs.candles), start=start, end=start + timedelta(hours=1)
        )
    assert "features" in str(err.value) and "expected" in str(err.value)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_features(inputs, start=start.replace(tzinfo=None), end=start + timedelta(hours=1))


def test_nan_and_inf_inputs_are_flagged_and_never_propagate(small: tuple[FeatureInputs, datetime]) -> None:
    inputs, start = small
    assert inputs.premium is not None and inputs.candles is not None
    poison = pl.int_range(pl.len()) % 37 == 5
    premium = inputs.premium.with_columns(
        pl.when(poison).then(float("nan")).otherwise(pl.col("premium_fx")).alias("premium_fx")
    )
    candles = inputs.candles.with_columns(
        pl.when(poison).then(float("inf")).otherwise(pl.col("high")).alias("high")
    )
    result = build_features(
        FeatureInputs(premium=premium, candles=candles, fx=inputs.fx),
        start=start,
        end=start + timedelta(hours=12),
    )
    assert any(
        "premium: non-finite values treated as missing" in p and "premium_fx=" in p
        for p in result.input_problems
    )
    assert any(p.startswith("candles:") and "high=" in p for p in result.input_problems)
    _no_nan(result.frame)
    assert (
        result.frame["prem_fx"].null_count() > 0
        and result.frame["prem_fx_z_1h"].null_count() < result.frame.height
    )


def test_data_after_end_changes_nothing(small: tuple[FeatureInputs, datetime]) -> None:
    inputs, start = small
    end = start + timedelta(hours=6)
    assert inputs.premium is not None
    cut = FeatureInputs(
        **{
            k: getattr(inputs, k).filter(pl.col("ts") < end)
            for k in ("premium", "candles", "fx", "orderbook", "onchain", "macro", "news", "news_sentiment")
        }
    )
    a = build_features(inputs, start=start, end=end).frame
    b = build_features(cut, start=start, end=end).frame
    assert a.equals(b)
