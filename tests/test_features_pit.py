"""Point-in-time retrieval: values as known at the requested time, over stored daily partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from kimp.features.pit import point_in_time
from kimp.storage.parquet_store import ParquetStore

DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def _features(day: datetime, interval_s: int = 3600) -> pl.DataFrame:
    """Two coins, hourly bars; feature value = hours since DAY0 (+1000 for ETH) so matches are checkable."""
    rows = []
    for coin, offset in (("BTC", 0.0), ("ETH", 1000.0)):
        ts = [day + timedelta(seconds=i * interval_s) for i in range(86_400 // interval_s)]
        rows.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "coin": coin,
                    "interval_s": pl.Series([interval_s] * len(ts), dtype=pl.Int32),
                    "f_hours": pl.Series(
                        [(t - DAY0).total_seconds() / 3600 + offset for t in ts], dtype=pl.Float32
                    ),
                    "f_other": pl.Series([1.0] * len(ts), dtype=pl.Float32),
                }
            )
        )
    return pl.concat(rows).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


@pytest.fixture
def store(tmp_path: Path) -> str:
    s = ParquetStore(str(tmp_path / "store"))
    for d in range(2):
        day = DAY0 + timedelta(days=d)
        s.write("features", day.strftime("%Y-%m-%d"), _features(day))
    return s.base_uri


def test_values_known_at_the_requested_time(store: str) -> None:
    requests = pl.DataFrame(
        {
            "ts": [
                DAY0 + timedelta(hours=5),  # the 04:00 bar closed exactly now: known
                DAY0 + timedelta(hours=5, minutes=59),  # the 05:00 bar is still open
                DAY0 + timedelta(days=1, minutes=30),  # across the partition boundary: 23:00 bar of day 0
                DAY0 + timedelta(minutes=30),  # before any bar closed
                DAY0 + timedelta(days=5),  # after the store: the last row, flagged by its feature_ts
            ],
            "coin": ["BTC", "ETH", "BTC", "BTC", "ETH"],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    out = point_in_time(store, requests, features=["f_hours"])
    assert out.columns == ["ts", "coin", "feature_ts", "known_at", "f_hours"]
    assert out["f_hours"].to_list() == [4.0, 1004.0, 23.0, None, 1047.0]
    assert out["feature_ts"][0] == DAY0 + timedelta(hours=4)
    assert out["known_at"][0] == DAY0 + timedelta(hours=5)
    assert (out.drop_nulls("known_at")["known_at"] <= out.drop_nulls("known_at")["ts"]).all()


def test_request_order_all_features_and_staleness(store: str) -> None:
    requests = pl.DataFrame(
        {
            "ts": [DAY0 + timedelta(days=5), DAY0 + timedelta(hours=10)],
            "coin": ["BTC", "BTC"],
            "tag": ["x", "y"],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    out = point_in_time(store, requests)
    assert out["tag"].to_list() == ["x", "y"] and {"f_hours", "f_other"} <= set(out.columns)
    fresh = point_in_time(store, requests, features=["f_hours"], max_staleness_s=3600)
    assert fresh["f_hours"].to_list() == [None, 9.0]
    with pytest.raises(ValueError, match="not in the stored"):
        point_in_time(store, requests, features=["nope"])
    with pytest.raises(ValueError, match="ts and coin"):
        point_in_time(store, requests.drop("coin"))
