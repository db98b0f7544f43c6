"""The asset graph in process (dagster.materialize with test resources and a partition key)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from dagster import DagsterInstance, materialize

from kimp.settings import Settings
from kimp_pipelines.assets import build_market_assets
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources import MarketDataResource, build_resources
from tests.fakes import FX_RATE, FakeSource

DEFECT: dict = {}
MARKET_ASSETS = build_market_assets(Partitions.from_settings(Settings()))


class FakeMarket(MarketDataResource):
    def source(self) -> FakeSource:  # type: ignore[override]
        return FakeSource(defects=DEFECT)


def _run(base: Path, day: str, instance: DagsterInstance, selection: str | None = None):  # type: ignore[no-untyped-def]
    resources = build_resources(Settings(home=base, storage_uri=str(base)))
    return materialize(
        MARKET_ASSETS,
        partition_key=day,
        selection=selection,
        resources={**resources, "market_data": FakeMarket(kind="fake", seed=0, orderbook_interval_ms=60_000)},
        instance=instance,
        raise_on_error=False,
    )


def test_whole_graph_two_days_with_fx_lookback(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    DEFECT.clear()
    first = _run(tmp_path, "2024-01-01", instance)
    # Day one has no FX published before its bars close (its look-back was never materialized): the
    # blocking freshness check says so instead of passing a premium computed without FX.
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in first.get_asset_check_evaluations()
        if not e.passed
    ]
    assert failed == [("kimchi_premium", "fx_freshness")]
    second = _run(tmp_path, "2024-01-02", instance)
    assert second.success
    evaluations = second.get_asset_check_evaluations()
    assert len(evaluations) == 41 and all(e.passed for e in evaluations)
    premium = pl.read_parquet(tmp_path / "kimchi_premium" / "2024-01-02.parquet")
    assert premium.height == 96
    assert premium["usdkrw"].drop_nulls().unique().to_list() == [
        FX_RATE
    ]  # FX dated Jan 1, from the look-back
    meta = second.asset_materializations_for_node("kimchi_premium")[0].metadata
    assert meta["dagster/row_count"].value == 96
    assert "data:image/png;base64," in meta["plot"].value
    raw_meta = second.asset_materializations_for_node("orderbook_snapshots")[0].metadata
    assert raw_meta["provided"].value is False  # the fake market has no order books: flagged, not zeros


def test_failed_blocking_check_stops_downstream_and_keeps_last_good_output(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    DEFECT.clear()
    _run(tmp_path, "2024-01-01", instance)
    assert _run(tmp_path, "2024-01-02", instance).success
    good = pl.read_parquet(tmp_path / "kimchi_premium" / "2024-01-02.parquet")
    good_binance = (tmp_path / "binance_candles" / "2024-01-02.parquet").read_bytes()
    DEFECT["binance_candles"] = lambda f: f.with_columns(low=pl.col("high") * 1.5)
    try:
        result = _run(tmp_path, "2024-01-02", instance)
    finally:
        DEFECT.clear()
    assert not result.success
    failed = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    assert failed == {("binance_candles", "prices")}
    evaluation = next(e for e in result.get_asset_check_evaluations() if not e.passed)
    assert "high" in evaluation.description and "low" in evaluation.description
    assert not result.asset_materializations_for_node("kimchi_premium")  # never ran
    assert pl.read_parquet(tmp_path / "kimchi_premium" / "2024-01-02.parquet").equals(good)
    # the checks run before the write: the failing candles never replaced the good ones
    assert not result.asset_materializations_for_node("binance_candles")
    assert (tmp_path / "binance_candles" / "2024-01-02.parquet").read_bytes() == good_binance


def test_source_errors_fail_the_asset_without_writing(tmp_path: Path) -> None:
    from kimp.errors import MarketDataError

    instance = DagsterInstance.ephemeral()
    DEFECT.clear()
    assert _run(tmp_path, "2024-01-02", instance, selection="upbit_candles").success
    before = (tmp_path / "upbit_candles" / "2024-01-02.parquet").read_bytes()

    def explode(frame: pl.DataFrame) -> pl.DataFrame:
        raise MarketDataError(
            source="fake", partition="2024-01-02", problem="truncated file", expected="a whole file"
        )

    DEFECT["upbit_candles"] = explode
    try:
        result = _run(tmp_path, "2024-01-02", instance, selection="upbit_candles")
    finally:
        DEFECT.clear()
    assert not result.success
    assert (tmp_path / "upbit_candles" / "2024-01-02.parquet").read_bytes() == before


def test_whole_market_data_graph_on_the_simulated_market(tmp_path: Path) -> None:
    """Every raw table and the premium for one day of the embedded default, all 41 checks passing."""
    settings = Settings(home=tmp_path, storage_uri=str(tmp_path), seed=7, orderbook_interval_ms=60_000)
    result = materialize(
        MARKET_ASSETS,
        partition_key="2024-03-04",
        resources=build_resources(settings),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    failed = [e.description for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success and not failed, failed
    rows = {
        name: pl.read_parquet(tmp_path / name / "2024-03-04.parquet").height
        for name in (
            "upbit_candles",
            "bithumb_candles",
            "binance_candles",
            "orderbook_snapshots",
            "kimchi_premium",
        )
    }
    assert rows == {
        "upbit_candles": 3 * 1440,
        "bithumb_candles": 2 * 1440,
        "binance_candles": 2 * 1440,
        "orderbook_snapshots": 7 * 1440,  # one snapshot a minute for 7 markets at this interval
        "kimchi_premium": 2 * 2 * 1440,
    }
    premium = pl.read_parquet(tmp_path / "kimchi_premium" / "2024-03-04.parquet")
    assert premium["premium_fx"].null_count() == 0 and premium["premium_usdt"].null_count() == 0
    assert premium["premium_fx"].abs().max() < 0.6


def test_check_results_are_recorded_per_day(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    DEFECT.clear()
    result = _run(tmp_path, "2024-01-03", instance, selection="fx_usdkrw")
    assert {e.partition for e in result.get_asset_check_evaluations()} == {"2024-01-03"}
