"""Raw market-data assets, one per table (candles one per venue), each a UTC day partition.

Assets stay thin: ask the configured source for the day, log what came back, attach metadata.
A table the source cannot provide is stored empty with its schema and flagged ``provided: false`` in
metadata, so that downstream families are null and flagged, never silently zero. The blocking
'coverage' check compares the day with the stored partition it would replace: less data (a series, rows,
hours, or everything) fails the day and keeps the stored file, unless the run allows shrinking.
"""

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, DailyPartitionsDefinition, Output, asset

from kimp.errors import MarketDataError
from kimp.market_data import schemas
from kimp.market_data.source import MarketSource
from kimp.timeutil import parse_day
from kimp_pipelines.assets.checks import check_specs, run_checks, source_failure
from kimp_pipelines.assets.metadata import table_metadata
from kimp_pipelines.resources.io_manager import stored_output
from kimp_pipelines.resources.market_data import MarketDataResource
from kimp_pipelines.resources.quality import QualityResource

GROUP = "market_data"

Fetch = Callable[[MarketSource, date], pl.DataFrame]


def _raw_asset(
    name: str,
    table: str,
    fetch: Fetch,
    description: str,
    partitions: DailyPartitionsDefinition,
    venue: str | None = None,
) -> AssetsDefinition:
    @asset(
        name=name,
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        description=description,
        metadata={"table": table, **({"venue": venue} if venue else {})},
        check_specs=check_specs(name, table, partitions),
    )
    def _raw(
        context: AssetExecutionContext, market_data: MarketDataResource, quality: QualityResource
    ) -> Iterator[Any]:
        day = parse_day(context.partition_key)
        source = market_data.source()
        provided = source.provides(table, venue) if venue else source.provides(table)  # type: ignore[arg-type]
        try:
            frame = fetch(source, day) if provided else schemas.empty(schemas.TABLES[table])
        except MarketDataError as exc:  # bad input: one paragraph (file, line, field, value) for the CLI
            raise source_failure(exc) from exc
        if not provided:
            context.log.info(f"{name}: the {source.name} source does not provide this table; stored empty")
        elif frame.height == 0:
            # Missing candles matter; an empty weekend of macro data or a quiet news day does not.
            log = context.log.warning if table == "candles" else context.log.info
            log(f"{name}: the {source.name} source has no rows for {day}")
        else:
            context.log.info(f"{name}: {frame.height} rows for {day} from the {source.name} source")
        meta = {"source": source.name, "provided": provided, **table_metadata(frame)}
        if "symbol" in frame.columns and frame.height:
            meta["symbols"] = ", ".join(sorted(frame["symbol"].unique().to_list()))
        # The partition this run would replace: the new one must hold at least as much ('coverage').
        stored = stored_output(context)
        yield from run_checks(
            context, name, table, frame, day, quality.config(), stored=stored, source=source.name
        )
        yield Output(frame, metadata=meta)

    return _raw


# asset name -> (table; the source method is named after the table, description)
_DAILY_TABLES: dict[str, tuple[str, str]] = {
    "fx_usdkrw": (
        "fx",
        "USD/KRW observations (intraday path and/or daily closes/fixings) with the time each was published.",
    ),
    "orderbook_snapshots": (
        "orderbook",
        "L10 order-book snapshots per venue and symbol (wide: bid/ask price and size per level).",
    ),
    "onchain_metrics": (
        "onchain",
        "On-chain metrics per coin, 10-minute windows, known at window end (published_at).",
    ),
    "macro_daily": (
        "macro",
        "Daily macro series (KOSPI, KOSDAQ, VIX, DXY, gold, silver, US 2y/10y) stamped with publication time.",
    ),
    "news_headlines": ("news", "News headlines (time, source, text)."),
}


def build_raw_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """One asset per raw table (candles one per venue) over the given daily partitions."""
    candle_assets = [
        _raw_asset(
            f"{venue}_candles",
            "candles",
            lambda source, day, v=venue: source.candles(v, day),
            f"OHLCV candles from {venue.capitalize()}, every symbol and interval the source has; ts = bar open (UTC).",
            partitions,
            venue=venue,
        )
        for venue in schemas.VENUES
    ]
    table_assets = [
        _raw_asset(name, table, lambda source, day, t=table: getattr(source, t)(day), description, partitions)
        for name, (table, description) in _DAILY_TABLES.items()
    ]
    return [*candle_assets, *table_assets]
