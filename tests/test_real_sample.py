"""The premium from the real shared samples equals a hand computation from the raw files.

Reads ../shared/data/real (beside the repository in CI; the data may not be redistributed, so it is
not copied into tests/). The hand computation uses only the csv and gzip modules.
"""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from tests.conftest import SHARED_REAL

pytestmark = pytest.mark.skipif(not SHARED_REAL.is_dir(), reason=f"real samples not found at {SHARED_REAL}")

DAY = date(2018, 1, 10)  # a Wednesday in the 2018 premium peak


def _rows(path: Path) -> dict[str, dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        return {r.get("ts_utc") or r["date"]: r for r in csv.DictReader(fh)}


def test_premium_matches_hand_computation() -> None:
    from kimp.market_data.files import FilesSource
    from kimp.premium import compute_premium

    src = FilesSource(SHARED_REAL)
    fx = pl.concat([src.fx(DAY - timedelta(days=n)) for n in range(7, -1, -1)])
    premium = compute_premium(
        {"upbit": src.candles("upbit", DAY), "bithumb": src.candles("bithumb", DAY)},
        src.candles("binance", DAY),
        fx,
        day=DAY,
    )
    bithumb = _rows(SHARED_REAL / "bithumb_binance_1h" / "bithumb_BTCKRW_1h.csv.gz")
    binance = _rows(SHARED_REAL / "bithumb_binance_1h" / "binance_BTCUSDT_1h.csv.gz")
    usdkrw = _rows(SHARED_REAL / "investing_daily" / "USDKRW_daily.csv")
    btc = premium.filter((pl.col("coin") == "BTC") & (pl.col("kr_venue") == "bithumb")).sort("ts")
    assert btc.height == 24
    for hour in (0, 7, 13, 22, 23):
        ts = f"2018-01-10T{hour:02d}:00:00Z"
        close_at = datetime(2018, 1, 10, hour, tzinfo=UTC) + timedelta(hours=1)
        # latest FX close dated D, published at 00:00 UTC of D+1, no later than the bar's close
        fx_day = max(
            d for d in usdkrw if datetime.fromisoformat(d).replace(tzinfo=UTC) + timedelta(days=1) <= close_at
        )
        expected = (
            float(bithumb[ts]["close"]) / (float(binance[ts]["close"]) * float(usdkrw[fx_day]["close"])) - 1
        )
        got = btc.filter(pl.col("ts") == close_at - timedelta(hours=1)).row(0, named=True)
        assert got["premium_fx"] == pytest.approx(expected, rel=1e-12), ts
        assert got["usdkrw"] == float(usdkrw[fx_day]["close"])
    assert btc["fx_published_at"].max() == datetime(
        2018, 1, 11, tzinfo=UTC
    )  # the 23:00 bar uses Jan 10's close
    assert 0.30 < btc["premium_fx"].mean() < 0.60  # the January 2018 peak
    assert btc["premium_usdt"].is_null().all()  # Upbit listed USDT/KRW only in 2024


def test_real_sample_range_through_dagster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole market-data graph on the real files: look-back FX day first, then two days."""
    from kimp.settings import Settings
    from kimp_pipelines.assets import build_market_assets
    from kimp_pipelines.partitions import Partitions
    from kimp_pipelines.resources import build_resources

    settings = Settings(home=tmp_path, storage_uri=str(tmp_path), source="files", data_dir=str(SHARED_REAL))
    market_assets = build_market_assets(Partitions.from_settings(settings))
    resources = build_resources(settings)
    instance = DagsterInstance.ephemeral()
    assert materialize(
        market_assets,
        partition_key="2018-01-09",
        selection="fx_usdkrw",
        resources=resources,
        instance=instance,
    ).success
    for day in ("2018-01-10", "2018-01-11"):
        result = materialize(
            market_assets, partition_key=day, resources=resources, instance=instance, raise_on_error=False
        )
        failed = [e.description for e in result.get_asset_check_evaluations() if not e.passed]
        assert result.success and not failed, failed
    premium = pl.read_parquet(tmp_path / "kimchi_premium" / "2018-01-11.parquet")
    assert set(premium["kr_venue"].unique()) == {"bithumb"} and premium.height == 48
    meta = result.asset_materializations_for_node("onchain_metrics")[0].metadata
    assert meta["provided"].value is False


def test_a_day_without_data_is_a_clear_error(tmp_path: Path) -> None:
    """2020-03-01 lies in the window withheld from every shared file: no candles anywhere."""
    from kimp.settings import Settings
    from kimp_pipelines.assets import build_market_assets
    from kimp_pipelines.partitions import Partitions
    from kimp_pipelines.resources import build_resources

    data = str(SHARED_REAL / "bithumb_binance_1h")
    settings = Settings(home=tmp_path, storage_uri=str(tmp_path), source="files", data_dir=data)
    resources = build_resources(settings)
    result = materialize(
        build_market_assets(Partitions.from_settings(settings)),
        partition_key="2020-03-01",
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "kimchi_premium"
    message = failure.step_failure_data.error.cause.message
    assert (
        "partition 2020-03-01" in message
        and "bithumb_candles: 0 rows" in message
        and "binance_candles: 0 rows" in message
    )
    assert not (tmp_path / "kimchi_premium").exists()
