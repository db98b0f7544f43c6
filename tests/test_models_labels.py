"""Direction labels: joined in time (gaps give nulls), flat band, time of knowledge, price target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from kimp.errors import MarketDataError
from kimp.market_data.schemas import PREMIUM, UTC_TS
from kimp.models.base import DOWN, FLAT, UP, WalkForwardConfig
from kimp.models.labels import LABELS, LAST_MOVE, last_move, make_labels, premium_labels, price_labels

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CFG = WalkForwardConfig(horizon_minutes=60, round_trip_cost=0.003)


def _premium(
    values: list[float | None], *, step_min: int = 60, skip: set[int] = frozenset(), coin: str = "BTC"
) -> pl.DataFrame:
    rows = []
    for i, v in enumerate(values):
        if i in skip:
            continue
        ts = T0 + timedelta(minutes=step_min * i)
        rows.append(
            {
                "ts": ts,
                "coin": coin,
                "kr_venue": "upbit",
                "interval_s": step_min * 60,
                "premium_fx": v,
                "premium_usdt": v,
                "kr_close": 1.0,
                "binance_close": 1.0,
                "usdt_krw_close": 1.0,
                "usdkrw": 1.0,
                "fx_published_at": ts,
                "stale": False,
            }
        )
    return pl.DataFrame(rows, schema=PREMIUM)


def test_classes_follow_the_flat_band_and_the_schema() -> None:
    # changes: +0.004 (up), -0.001 (flat), -0.005 (down), +0.003 exactly (flat: not above the band)
    labels = premium_labels(_premium([0.030, 0.034, 0.033, 0.028, 0.031]), CFG)
    assert dict(labels.schema) == LABELS
    assert labels["label"].to_list() == [UP, FLAT, DOWN, FLAT, None]
    assert labels["horizon"].unique().to_list() == [60]
    # the regression target: the change itself, known when the label is, never a feature
    assert labels["change"].to_list()[:4] == pytest.approx([0.004, -0.001, -0.005, 0.003])
    assert labels["change"][4] is None
    from kimp.models.dataset import RESERVED

    assert {"change", "last_change"} <= RESERVED
    lm = last_move(labels)
    assert lm["last_change"].to_list()[:2] == pytest.approx([0.004, -0.001])  # the move that ended at ts


def test_label_is_known_at_the_close_of_the_future_bar() -> None:
    labels = premium_labels(_premium([0.03, 0.04, 0.05]), CFG)
    row = labels.row(0, named=True)
    # bar 0 opens at T0; the future bar opens at T0 + 60 min and closes at T0 + 120 min
    assert row["label_known_at"] == T0 + timedelta(minutes=120)


def test_gap_gives_null_not_the_next_row() -> None:
    # bar 1 is missing: row 0's future bar (T0 + 1 h) does not exist, so its label is null even though the
    # next row in the frame (T0 + 2 h) moved a lot; a row shift would have labelled it.
    labels = premium_labels(_premium([0.03, 0.05, 0.10, 0.10], skip={1}), CFG)
    by_ts = {r["ts"]: r["label"] for r in labels.iter_rows(named=True)}
    assert by_ts[T0] is None
    assert by_ts[T0 + timedelta(hours=2)] == FLAT


def test_minute_bars_compare_with_the_bar_an_hour_later() -> None:
    values = [0.03 + 0.0001 * i for i in range(130)]  # +0.6 pp per hour: up
    labels = premium_labels(_premium(values, step_min=1), CFG)
    known = labels.filter(pl.col("label").is_not_null())
    assert known.height == 70  # the last 60 bars have no bar an hour later
    assert set(known["label"].to_list()) == {UP}
    assert (known["label_known_at"] - known["ts"]).unique().to_list() == [timedelta(minutes=61)]


def test_null_premium_gives_null_label_and_coins_stay_apart() -> None:
    frame = pl.concat([_premium([0.03, None, 0.05]), _premium([0.03, 0.031, 0.029], coin="ETH")])
    labels = premium_labels(frame, CFG).sort("coin", "ts")
    assert labels.filter(pl.col("coin") == "BTC")["label"].to_list() == [None, None, None]
    assert labels.filter(pl.col("coin") == "ETH")["label"].to_list() == [FLAT, FLAT, None]


def test_usdt_column_and_venue_are_configurable() -> None:
    frame = _premium([0.03, 0.04]).with_columns(premium_usdt=pl.Series([0.03, 0.02]))
    cfg = WalkForwardConfig(premium_column="premium_usdt")
    assert premium_labels(frame, cfg)["label"][0] == DOWN
    with pytest.raises(MarketDataError, match="bithumb"):
        premium_labels(frame, WalkForwardConfig(kr_venue="bithumb"))


def test_duplicate_bars_are_refused_with_the_rows() -> None:
    frame = pl.concat([_premium([0.03, 0.04]), _premium([0.03, 0.04])])
    with pytest.raises(MarketDataError, match="one bar per"):
        premium_labels(frame, CFG)


def test_last_move_is_the_label_that_ended_at_this_close() -> None:
    labels = premium_labels(_premium([0.030, 0.040, 0.041, 0.030]), CFG)
    moves = last_move(labels).sort("ts")
    by_ts = {r["ts"]: r[LAST_MOVE] for r in moves.iter_rows(named=True)}
    assert by_ts[T0 + timedelta(hours=1)] == UP  # 0.030 -> 0.040 ended at bar 1's close
    assert by_ts[T0 + timedelta(hours=3)] == DOWN
    # it is known at the close of the bar it is attached to, not later
    known = labels.with_columns(ts=pl.col("ts") + timedelta(hours=1)).select("ts", "label_known_at")
    joined = moves.join(known, on="ts")
    assert (joined["label_known_at"] <= joined["ts"] + timedelta(hours=1)).all()


def test_price_target_uses_the_korean_close_as_a_return() -> None:
    rows = []
    for i, close in enumerate([100.0, 100.5, 99.0]):
        for venue, quote in (("upbit", "KRW"), ("binance", "USDT")):
            rows.append(
                {
                    "ts": T0 + timedelta(hours=i),
                    "venue": venue,
                    "symbol": f"BTC/{quote}",
                    "base": "BTC",
                    "quote": quote,
                    "interval_s": 3600,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close if venue == "upbit" else 1.0,
                    "volume": 1.0,
                    "quote_volume": None,
                }
            )
    candles = pl.DataFrame(rows).with_columns(pl.col("ts").cast(UTC_TS), pl.col("interval_s").cast(pl.Int32))
    labels = price_labels(candles, CFG)
    assert labels["label"].to_list() == [UP, DOWN, None]  # +0.5 % > 0.3 %, -1.5 %
    assert make_labels(CFG, candles=candles, target="price").equals(labels)
    with pytest.raises(ValueError, match="premium"):
        make_labels(CFG, target="premium")
