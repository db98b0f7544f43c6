"""The ``kimchi_premium`` asset: both definitions per bar, coin and Korean venue."""

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

from kimp.errors import MarketDataError
from kimp.premium import FX_LOOKBACK_DAYS, compute_premium
from kimp.reporting.plots import premium_day_png
from kimp.timeutil import parse_day
from kimp_pipelines.assets.checks import check_specs, run_checks, source_failure
from kimp_pipelines.assets.metadata import frame_table, png_markdown, table_metadata
from kimp_pipelines.resources.io_manager import ALLOW_MISSING
from kimp_pipelines.resources.quality import QualityResource


def build_premium_asset(partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    """The premium over the given daily partitions."""

    @asset(
        partitions_def=partitions,
        group_name="premium",
        kinds={"polars", "parquet"},
        check_specs=check_specs("kimchi_premium", "kimchi_premium", partitions),
        ins={
            "upbit_candles": AssetIn(),
            "bithumb_candles": AssetIn(),
            "binance_candles": AssetIn(),
            "fx_usdkrw": AssetIn(
                partition_mapping=TimeWindowPartitionMapping(
                    start_offset=-FX_LOOKBACK_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
                metadata={ALLOW_MISSING: True},
            ),
        },
    )
    def kimchi_premium(
        context: AssetExecutionContext,
        quality: QualityResource,
        upbit_candles: pl.DataFrame,
        bithumb_candles: pl.DataFrame,
        binance_candles: pl.DataFrame,
        fx_usdkrw: pl.DataFrame,
    ) -> Iterator[Any]:
        """Kimchi premium per bar: premium_fx = KRW / (Binance USDT x USD/KRW) - 1 and
        premium_usdt = KRW / (Binance USDT x Upbit USDT/KRW) - 1, as fractions. Each bar uses the latest
        USD/KRW published at or before its close; zero-volume (stale) bars have null premiums."""
        day = parse_day(context.partition_key)
        try:
            premium = compute_premium(
                {"upbit": upbit_candles, "bithumb": bithumb_candles}, binance_candles, fx_usdkrw, day=day
            )
        except MarketDataError as exc:
            raise source_failure(exc) from exc
        meta = table_metadata(premium)
        stats = (
            premium.group_by(["coin", "kr_venue"])
            .agg(
                mean_fx_pct=(pl.col("premium_fx").mean() * 100).round(3),
                min_fx_pct=(pl.col("premium_fx").min() * 100).round(3),
                max_fx_pct=(pl.col("premium_fx").max() * 100).round(3),
                mean_usdt_pct=(pl.col("premium_usdt").mean() * 100).round(3),
                bars=pl.len(),
                null_fx=pl.col("premium_fx").is_null().sum(),
            )
            .sort(["coin", "kr_venue"])
        )
        for row in stats.iter_rows(named=True):
            context.log.info(f"premium {day} {row}")
        meta["summary"] = frame_table(stats)
        meta["plot"] = png_markdown(premium_day_png(premium, f"Kimchi premium {day}"), f"premium {day}")
        yield from run_checks(context, "kimchi_premium", "kimchi_premium", premium, day, quality.config())
        yield Output(premium, metadata=meta)

    return kimchi_premium
