"""The feature assets through `dagster.materialize` with test resources and partition keys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from dagster import DagsterInstance, materialize

from kimp.features import FeatureInputs, build_features, feature_set_version
from kimp.settings import Settings
from kimp_pipelines.assets import build_market_assets
from kimp_pipelines.assets.features import build_feature_assets
from kimp_pipelines.assets.sentiment import build_sentiment_asset
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources import build_resources
from tests.ui_checks import rendered_tables

FIXTURE = Path(__file__).parent / "fixtures" / "real_hourly"
DAYS = ["2018-01-02", "2018-01-03", "2018-01-04"]


def test_feature_day_equals_the_same_day_computed_over_the_whole_range(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, storage_uri=str(tmp_path), source="files", data_dir=str(FIXTURE))
    partitions = Partitions.from_settings(settings)
    market_assets = build_market_assets(partitions)
    # features read news_sentiment (never materialized here: the sentiment family stays null and flagged)
    feature_assets = [
        build_sentiment_asset(partitions.daily),
        *build_feature_assets(settings.feature_config(), partitions.daily),
    ]
    resources = build_resources(settings)
    instance = DagsterInstance.ephemeral()
    for day in ("2017-12-28", "2017-12-29"):  # USD/KRW look-back of the first premium day
        assert materialize(
            market_assets, partition_key=day, selection="fx_usdkrw", resources=resources, instance=instance
        ).success
    for day in ["2018-01-01", *DAYS]:
        assert materialize(market_assets, partition_key=day, resources=resources, instance=instance).success
    # day 3 alone, reading its look-back partitions through the time-window mappings
    result = materialize(
        [*market_assets, *feature_assets],
        partition_key=DAYS[-1],
        selection=["features", "feature_catalog"],
        resources=resources,
        instance=instance,
    )
    assert result.success
    meta = result.asset_materializations_for_node("features")[0].metadata
    assert meta["feature_set_version"].value == feature_set_version()
    tables = rendered_tables(meta)  # every table renders and parses as the UI receives it
    # the real samples have no books: flagged, not zero
    assert "orderbook" in {r["family/timeframe"] for r in tables["unavailable"]}
    stored = pl.read_parquet(tmp_path / "features" / f"{DAYS[-1]}.parquet")
    catalog = pl.read_parquet(tmp_path / "feature_catalog" / f"{DAYS[-1]}.parquet")
    assert catalog.height >= 500 and set(catalog["name"]) <= set(stored.columns)
    # the counts are the stored table's: its columns, of which the catalog's features
    assert meta["columns"].value == stored.width == len(meta["dagster/column_schema"].value.columns)
    assert meta["features"].value == catalog.height
    catalog_meta = result.asset_materializations_for_node("feature_catalog")[0].metadata
    assert len(rendered_tables(catalog_meta)["catalog"]) == catalog.height

    # the same day inside one computation over all four days
    def read(table: str) -> pl.DataFrame:
        return pl.concat(
            [pl.read_parquet(p) for p in sorted((tmp_path / table).glob("*.parquet"))], how="vertical_relaxed"
        )

    candles = pl.concat([read(t) for t in ("bithumb_candles", "binance_candles")], how="vertical_relaxed")
    inputs = FeatureInputs(premium=read("kimchi_premium"), candles=candles, fx=read("fx_usdkrw"))
    whole = build_features(
        inputs, start=datetime(2018, 1, 1, tzinfo=UTC), end=datetime(2018, 1, 5, tzinfo=UTC)
    ).frame
    same_day = whole.filter(pl.col("ts") >= datetime(2018, 1, 4, tzinfo=UTC)).select(stored.columns)
    assert same_day.height == stored.height == 48
    diff = (same_day.drop("ts", "coin", "interval_s") - stored.drop("ts", "coin", "interval_s")).select(
        pl.all().abs().max()
    )
    worst = max((v for v in diff.row(0) if v is not None), default=0.0)
    scale = stored.drop("ts", "coin", "interval_s").select(pl.all().abs().max()).row(0)
    assert worst <= 2e-4 * max(1.0, max(v for v in scale if v is not None))
    # nulls sit in the same places
    assert (same_day.select(pl.all().is_null().sum()).row(0)) == (
        stored.select(pl.all().is_null().sum()).row(0)
    )
