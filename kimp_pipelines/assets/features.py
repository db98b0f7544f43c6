"""The feature store's assets: ``features`` (the wide table) and ``feature_catalog``, per UTC day.

Each input is read with the look-back its features declare (a time-window partition mapping that
reaches back, never forward), so the day's first bars see the same history whether the day runs alone
or inside a range. Look-back partitions that were never materialized are skipped: those features are
null during their warm-up, as the catalog documents, never computed from less history silently.
"""

from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from kimp.features import FeatureConfig, FeatureInputs, build_features, catalog_frame, feature_set_version
from kimp.features import lookback_days as feature_lookbacks
from kimp.features.build import KEY_COLUMNS
from kimp.timeutil import day_bounds, parse_day
from kimp_pipelines.assets.metadata import frame_table, mapping_table, table_metadata
from kimp_pipelines.resources.io_manager import ALLOW_MISSING

GROUP = "features"

# input name -> (upstream asset, the feature input table it feeds)
_INPUTS: dict[str, str] = {
    "kimchi_premium": "premium",
    "upbit_candles": "candles",
    "bithumb_candles": "candles",
    "binance_candles": "candles",
    "fx_usdkrw": "fx",
    "orderbook_snapshots": "orderbook",
    "onchain_metrics": "onchain",
    "macro_daily": "macro",
    "news_headlines": "news",
    "news_sentiment": "news_sentiment",
}


def _lookback_in(days: int) -> AssetIn:
    return AssetIn(
        partition_mapping=TimeWindowPartitionMapping(
            start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True
        ),
        metadata={ALLOW_MISSING: True},
    )


def _frame_or_none(frame: pl.DataFrame) -> pl.DataFrame | None:
    """None (the family is null and flagged) when no row exists in the whole look-back: a source that
    lacks the table stores it empty, and zero news or on-chain rows must not read as "zero activity"."""
    return frame if frame.height else None


def catalog_families(catalog: pl.DataFrame) -> pl.DataFrame:
    """Family summary: how many features each family has and its longest look-back."""
    return (
        catalog.group_by("family")
        .agg(features=pl.len(), max_lookback_h=(pl.col("lookback_s").max() / 3600).round(2))
        .sort("family")
    )


def build_feature_assets(
    config: FeatureConfig, partitions: DailyPartitionsDefinition
) -> list[AssetsDefinition]:
    """``features`` and ``feature_catalog`` for the feature set ``config`` (its hash is their code version,
    so a changed feature set makes stored partitions out of date) over the given daily partitions."""
    lookback = feature_lookbacks(config)
    version = feature_set_version(config)

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        ins={name: _lookback_in(lookback.get(table, 0)) for name, table in _INPUTS.items()},
        code_version=version,
    )
    def features(
        context: AssetExecutionContext,
        kimchi_premium: pl.DataFrame,
        upbit_candles: pl.DataFrame,
        bithumb_candles: pl.DataFrame,
        binance_candles: pl.DataFrame,
        fx_usdkrw: pl.DataFrame,
        orderbook_snapshots: pl.DataFrame,
        onchain_metrics: pl.DataFrame,
        macro_daily: pl.DataFrame,
        news_headlines: pl.DataFrame,
        news_sentiment: pl.DataFrame,
    ) -> Iterator[Any]:
        """The wide feature table: ``ts``, ``coin``, then one column per catalog feature, for the bars of the
        day. A row at ``ts`` uses only data known by the bar's close; families whose source the market lacks
        are null and listed in the metadata (``unavailable``)."""
        day = parse_day(context.partition_key)
        start, end = day_bounds(day)
        candles = [f for f in (upbit_candles, bithumb_candles, binance_candles) if f.width]
        inputs = FeatureInputs(
            premium=_frame_or_none(kimchi_premium),
            candles=pl.concat(candles, how="vertical_relaxed") if candles else None,
            fx=_frame_or_none(fx_usdkrw),
            orderbook=_frame_or_none(orderbook_snapshots),
            onchain=_frame_or_none(onchain_metrics),
            macro=_frame_or_none(macro_daily),
            news=_frame_or_none(news_headlines),
            news_sentiment=_frame_or_none(news_sentiment),
        )
        result = build_features(inputs, start=start, end=end, config=config)
        frame = result.frame
        feature_names = [c for c in frame.columns if c not in KEY_COLUMNS]  # the catalog's features
        n_features = len(feature_names)
        null_share = frame.select(feature_names).null_count().transpose(column_names=["nulls"]).get_column(
            "nulls"
        ).sum() / max(1, frame.height * n_features)
        if result.unavailable:
            # One line: the reasons are expected on a given data set (hourly bars have no 1-minute windows,
            # the real samples no order books); the full map is in the metadata.
            context.log.info(
                f"features {day}: {len(result.unavailable)} family/timeframe groups are null: "
                + "; ".join(f"{k}: {v}" for k, v in sorted(result.unavailable.items()))
            )
        context.log.info(
            f"features {day}: {frame.height} rows x {n_features} features at {result.interval_s}s bars, "
            f"{null_share:.1%} null cells, version {version}"
        )
        # `columns` counts the stored Parquet's columns: the keys (ts, coin, interval_s) plus the features.
        meta = table_metadata(frame, preview_columns=[*KEY_COLUMNS, *feature_names[:6]])
        meta.update(
            {
                "features": n_features,
                "interval_s": result.interval_s,
                "feature_set_version": version,
                "null_share": round(float(null_share), 4),
                "unavailable": mapping_table(result.unavailable, key="family/timeframe", value="why null"),
            }
        )
        yield Output(frame, metadata=meta)

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        code_version=version,
    )
    def feature_catalog(context: AssetExecutionContext) -> Output[pl.DataFrame]:
        """Every feature's name, family, parameters, formula in words, look-back and source tables: the
        catalog the day's ``features`` were computed with (its hash is the feature-set version)."""
        catalog = catalog_frame(config)
        context.log.info(
            f"feature catalog {context.partition_key}: {catalog.height} features, version {version}"
        )
        return Output(
            catalog,
            metadata={
                "dagster/row_count": catalog.height,
                "feature_set_version": version,
                "families": frame_table(catalog_families(catalog)),
                "catalog": frame_table(_catalog_columns(catalog), max_rows=catalog.height),
            },
        )

    return [features, feature_catalog]


def _catalog_columns(catalog: pl.DataFrame) -> pl.DataFrame:
    cols = ("name", "family", "params", "lookback_s", "sources", "formula")
    return catalog.select([c for c in cols if c in catalog.columns])
