"""The offline time-series store against the real PostgreSQL server (127.0.0.1:5432, as on every kimp
machine and CI): a database of this test run, dropped after. TimescaleDB is not installed here, so the
plain-PostgreSQL path runs: day partitions and the retention job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.storage.parquet_store import ParquetStore
from kimp.storage.sql import query_csv
from kimp.streaming.events import FeatureVector
from kimp.streaming.online import Signal
from kimp.streaming.recorder import Recorder
from kimp.streaming.timeseries import TimeSeriesStore

SERVER = "postgresql://postgres@127.0.0.1:5432"
NAMES = ("kr_ret_1m", "prem_fx", "prem_fx_z_1d")


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    name = f"kimp_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True)
    except Exception as e:  # kimp's machines and CI run PostgreSQL 15 on 127.0.0.1:5432
        pytest.fail(f"no PostgreSQL server at {SERVER} ({e}); the time-series store tests need one")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        gone = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        admin.close()
        assert gone is None


def _vector(
    ts: datetime, coin: str = "BTC", values=(0.001, 0.0512345678, None), tick: bool = False
) -> FeatureVector:
    return FeatureVector(
        ts=ts,
        coin=coin,
        kr_venue="upbit",
        names=NAMES,
        values=np.array([np.nan if v is None else v for v in values]),
        feature_set="abc123def456",
        known_at=ts + timedelta(minutes=1),
        computed_at=ts + timedelta(minutes=1, milliseconds=4),
        tick=tick,
    )


def test_tables_are_partitioned_by_day_and_round_trip(pg_url: str) -> None:
    store = TimeSeriesStore(pg_url, NAMES, prefix="kimp")
    assert store.timescale is False  # not installed on this machine: declarative partitions
    t0 = datetime(2024, 3, 1, 23, 58, tzinfo=UTC)
    vectors = [_vector(t0 + timedelta(minutes=k), coin) for k in range(4) for coin in ("BTC", "ETH")]
    assert store.append_vectors(vectors) == 8
    assert store.partitions("served_features") == [
        "kimp_served_features_p20240301",
        "kimp_served_features_p20240302",
    ]
    got = store.read("served_features")
    assert got.height == 8 and got.columns[:5] == ["ts", "coin", *NAMES]
    assert got["prem_fx"][0] == pytest.approx(0.0512345678, rel=1e-7)  # float4, as the features table
    assert got["prem_fx_z_1d"].null_count() == 8
    day2 = store.read("served_features", start=datetime(2024, 3, 2, tzinfo=UTC))
    assert day2.height == 4 and set(day2["coin"]) == {"BTC", "ETH"}
    premium = pl.DataFrame(
        {
            "ts": [t0],
            "coin": ["BTC"],
            "kr_venue": ["upbit"],
            "interval_s": [60],
            "premium_fx": [0.05],
            "premium_usdt": [0.03],
            "kr_close": [95e6],
            "binance_close": [67e3],
            "usdt_krw_close": [1380.0],
            "usdkrw": [1333.0],
            "stale": [False],
        }
    )
    assert store.append_bars(premium) == 1
    assert store.read("bars")["premium_fx"].to_list() == [0.05]
    signal = Signal(
        ts=t0,
        coin="BTC",
        kr_venue="upbit",
        horizon=60,
        model="lightgbm",
        model_version="4",
        p_down=0.2,
        p_flat=0.3,
        p_up=0.5,
        target_position=0.25,
        feature_ts=t0 + timedelta(minutes=1),
        feature_set="abc123def456",
        written_at=t0 + timedelta(minutes=1, milliseconds=9),
    )
    store.append_signal(signal)
    assert store.read("predictions")["p_up"].to_list() == [0.5]
    assert store.read("signals")["target_position"].to_list() == [0.25]
    store.close()


def test_retention_job_drops_only_expired_day_partitions(pg_url: str) -> None:
    store = TimeSeriesStore(pg_url, NAMES, prefix="kimp", retention_days=30)
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    old, recent = now - timedelta(days=45), now - timedelta(days=2)
    store.append_vectors([_vector(old), _vector(recent)])
    dropped = store.apply_retention(now)
    assert dropped == [f"kimp_served_features_p{old:%Y%m%d}"]
    assert store.read("served_features")["ts"].to_list() == [recent]
    store.append_vectors([_vector(old + timedelta(minutes=1))])  # an expired day can be written again
    assert store.read("served_features").height == 2
    store.close()


def test_record_keeps_served_vectors_for_kimp_sql_and_postgres(pg_url: str, tmp_path: Path) -> None:
    parquet = ParquetStore(str(tmp_path / "store"))
    ts = TimeSeriesStore(pg_url, NAMES)
    recorder = Recorder(parquet, ts, flush_every=3)
    t0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
    recorder.add([_vector(t0 + timedelta(minutes=k)) for k in range(4)])  # one flush of 4
    recorder.add([_vector(t0 + timedelta(minutes=4), tick=True)])
    recorder.close()
    assert recorder.written == 5 and len(parquet.partitions("served_features")) == 2
    csv = query_csv(
        parquet, "SELECT count(*) AS n, sum(tick::int) AS ticks, min(ts) AS first FROM served_features"
    )
    assert csv.splitlines()[1] == "5,1,2024-03-01T10:00:00+00:00"
    columns = query_csv(parquet, "SELECT * FROM served_features LIMIT 0").splitlines()[0].split(",")
    assert columns[:5] == ["ts", "coin", *NAMES] and columns[5] == "served_at"
    assert ts.read("served_features").height == 5
    ts.close()
