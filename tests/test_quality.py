"""Quality suites (Great Expectations engine): pass on good data, fail on each defect, naming rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from kimp.quality import QualityConfig, validate
from tests.fakes import FakeSource

DAY = date(2024, 1, 2)


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    return FakeSource().candles("upbit", DAY)


def _failed(outcomes: dict, check: str) -> list[str]:
    return [f.expectation for f in outcomes[check].failures]


def test_good_candles_pass_every_check(candles: pl.DataFrame) -> None:
    outcomes = validate("candles", candles, day=DAY)
    assert {k: v.passed for k, v in outcomes.items()} == {
        "schema": True,
        "timestamps": True,
        "gaps": True,
        "prices": True,
        "coverage": True,
    }


def test_ohlc_inconsistency_names_the_rows(candles: pl.DataFrame) -> None:
    bad = (
        candles.with_row_index("i")
        .with_columns(high=pl.when(pl.col("i") == 7).then(pl.col("low") * 0.5).otherwise(pl.col("high")))
        .drop("i")
    )
    out = validate("candles", bad, day=DAY, checks=("prices",))["prices"]
    assert not out.passed
    assert any("column_A=high" in f.expectation for f in out.failures)
    rows = next(f.rows for f in out.failures if f.rows is not None)
    assert rows["_row"].to_list() == [7]
    assert rows["ts"][0] == datetime(2024, 1, 2, 7, tzinfo=UTC)


def test_non_positive_and_missing_prices_fail(candles: pl.DataFrame) -> None:
    bad = (
        candles.with_row_index("i")
        .with_columns(
            close=pl.when(pl.col("i") == 3)
            .then(-1.0)
            .when(pl.col("i") == 4)
            .then(None)
            .otherwise(pl.col("close"))
        )
        .drop("i")
    )
    out = validate("candles", bad, day=DAY, checks=("prices",))["prices"]
    failed = " ".join(f.expectation for f in out.failures)
    assert "expect_column_values_to_be_between(column=close" in failed
    assert "expect_column_values_to_not_be_null(column=close" in failed


def test_duplicate_and_unsorted_timestamps_fail(candles: pl.DataFrame) -> None:
    dup = pl.concat([candles, candles.slice(5, 1)])
    out = validate("candles", dup, day=DAY, checks=("timestamps",))["timestamps"]
    assert not out.passed and any("unique" in f.expectation for f in out.failures)
    swapped = pl.concat([candles.slice(0, 3), candles.slice(4, 1), candles.slice(3, 1), candles.slice(5)])
    out = validate("candles", swapped, day=DAY, checks=("timestamps",))["timestamps"]
    assert not out.passed and any("_dt_prev_s" in f.expectation for f in out.failures)


def test_rows_outside_the_partition_day_fail(candles: pl.DataFrame) -> None:
    out = validate("candles", candles, day=DAY + timedelta(days=1), checks=("timestamps",))["timestamps"]
    assert not out.passed and any("_in_day" in f.expectation for f in out.failures)


def test_gap_over_threshold_fails(candles: pl.DataFrame) -> None:
    holed = candles.filter(~pl.col("ts").dt.hour().is_in([5, 6, 7]))
    assert validate("candles", holed, day=DAY, checks=("gaps",))["gaps"].passed  # 3 h < 6 h default
    out = validate("candles", holed, day=DAY, checks=("gaps",), config=QualityConfig(max_gap_s=2 * 3600))[
        "gaps"
    ]
    assert not out.passed
    rows = out.failures[0].rows
    assert rows is not None and set(rows["ts"].dt.hour().to_list()) == {8}  # the first bar after the hole


def test_naive_timestamps_fail_schema(candles: pl.DataFrame) -> None:
    naive = candles.with_columns(pl.col("ts").dt.replace_time_zone(None))
    out = validate("candles", naive, day=DAY, checks=("schema",))["schema"]
    assert not out.passed and "expected Datetime(time_unit='us', time_zone='UTC')" in out.failures[0].detail


def test_premium_bounds_and_fx_freshness() -> None:
    from kimp.premium import compute_premium

    src = FakeSource()
    kr = {"upbit": src.candles("upbit", DAY), "bithumb": src.candles("bithumb", DAY)}
    fx = src.fx(DAY - timedelta(days=1))
    premium = compute_premium(kr, src.candles("binance", DAY), fx, day=DAY)
    outcomes = validate("kimchi_premium", premium, day=DAY)
    assert all(o.passed for o in outcomes.values()), [o.summary() for o in outcomes.values()]
    crazy = premium.with_columns(
        premium_fx=pl.when(pl.col("ts").dt.hour() == 1).then(2.5).otherwise(pl.col("premium_fx"))
    )
    assert not validate("kimchi_premium", crazy, day=DAY, checks=("premium_bounds",))["premium_bounds"].passed
    # FX older than the limit: a value published 10 days before the bars
    old = premium.with_columns(fx_published_at=pl.col("fx_published_at") - timedelta(days=10))
    out = validate("kimchi_premium", old, day=DAY, checks=("fx_freshness",))["fx_freshness"]
    assert not out.passed and out.failures[0].unexpected_count == premium.height


def test_empty_table_passes_schema_only_when_schema_is_right() -> None:
    from kimp.market_data import schemas

    assert all(o.passed for o in validate("orderbook", schemas.empty(schemas.ORDERBOOK), day=DAY).values())
    wrong = schemas.empty(schemas.ORDERBOOK).drop("ask_px_3")
    assert not validate("orderbook", wrong, day=DAY, checks=("schema",))["schema"].passed
