"""Daily backtest reports, per market scenario: the spread trade under each strategy and both engines.

``backtest_report`` (day D, scenario S) is :func:`kimp.backtest.daily.backtest_day` on D's stored tables:
every strategy of the registry (kimp.backtest.strategies) configured in ``BacktestSettings.strategies``,
both engines. It depends on itself: the previous day's partition of the same scenario (a time-window
mapping to the previous date) holds the engines' closing states and the strategies' own states, so each
day continues where the day before stopped (positions carry across days; ``KIMP_BT_CARRY=false`` closes
every day flat instead). Those states are part of the stored output, written atomically with it by the
IO manager: a failed day writes nothing, and the last good day stays what the next run continues from.
"""

from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MetadataValue,
    MultiPartitionMapping,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from kimp.rl.config import AGENTS
from kimp.timeutil import parse_day
from kimp_pipelines.assets.agents import agent_asset_name
from kimp_pipelines.assets.metadata import frame_table, list_table, png_markdown, table_metadata
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources.backtest import BacktestResource
from kimp_pipelines.resources.io_manager import ALLOW_MISSING

# The previous day of the same scenario.
PREVIOUS_DAY = MultiPartitionMapping(
    {
        "date": DimensionPartitionMapping(
            "date",
            TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        "scenario": DimensionPartitionMapping("scenario", IdentityPartitionMapping()),
    }
)


def _cards(frames: dict[str, pl.DataFrame]) -> dict[str, dict[str, Any]]:
    """The day's agent cards by kind (an agent not trained for the day is absent)."""
    return {kind: frame.row(0, named=True) for kind, frame in frames.items() if frame.height}


def build_backtest_asset(partitions: Partitions) -> AssetsDefinition:
    """``backtest_report`` over (day, scenario) partitions."""
    agent_ins = {agent_asset_name(kind): AssetIn(metadata={ALLOW_MISSING: True}) for kind in AGENTS}

    @asset(
        partitions_def=partitions.daily_scenario,
        group_name="backtest",
        kinds={"numba", "parquet"},
        ins={
            "predictions": AssetIn(metadata={ALLOW_MISSING: True}),
            "previous": AssetIn(
                key=AssetKey("backtest_report"),
                partition_mapping=PREVIOUS_DAY,
                metadata={ALLOW_MISSING: True},
            ),
            **agent_ins,
        },
    )
    def backtest_report(
        context: AssetExecutionContext,
        backtest: BacktestResource,
        kimchi_premium: pl.DataFrame,
        upbit_candles: pl.DataFrame,
        bithumb_candles: pl.DataFrame,
        binance_candles: pl.DataFrame,
        orderbook_snapshots: pl.DataFrame,
        predictions: pl.DataFrame,
        previous: pl.DataFrame,
        **agents: pl.DataFrame,
    ) -> Iterator[Output[pl.DataFrame]]:
        """Backtest of day D under one market scenario, continuing from day D-1's closing state: one row
        per strategy, coin, Korean venue and engine with returns, risk ratios, drawdown, trade statistics,
        costs by kind, the day's equity curve and the state the next day continues from; a small-multiples
        plot (one panel per strategy, coin and venue) and an HTML report."""
        from kimp.backtest import html_report
        from kimp.backtest.daily import backtest_day, chain_columns_dropped
        from kimp.backtest.report import small_multiples_png, span_text

        keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        day, scenario = parse_day(keys["date"]), keys["scenario"]
        candles = pl.concat(
            [f for f in (upbit_candles, bithumb_candles, binance_candles) if f.width], how="vertical_relaxed"
        )
        config = backtest.day_config()
        ran = backtest_day(
            day,
            scenario,
            premium=kimchi_premium,
            candles=candles,
            orderbook=orderbook_snapshots,
            config=config,
            predictions=predictions,
            agents=_cards({kind: agents[agent_asset_name(kind)] for kind in AGENTS}),
            previous=previous,
        )
        frame = ran.frame
        for line in ran.skipped:
            context.log.info(f"backtest {day} {scenario}: skipped {line}")
        for line in ran.notes:
            context.log.info(f"backtest {day} {scenario}: {line}")
        continued = int(frame["continued"].sum())
        chain = (
            f"{continued} of {frame.height} runs continued from {previous['date'].max() if previous.height else '-'}"
            if config.carry
            else "every day starts and ends flat (KIMP_BT_CARRY=false)"
        )
        context.log.info(f"backtest {day} {scenario}: {chain}")
        page = html_report(
            ran.results,
            title=f"kimp backtest {day} ({scenario})",
            strategies=ran.strategies,
            index_href="../../index.html",  # the range index page backtest_summary writes
        )
        html_path = backtest.write_report(day.isoformat(), scenario, page)
        span = span_text(ran.results[0])
        # What a row is (strategy, coin, venue, engine) and the run's own figures; a single day's
        # annualised Sharpe says how far it was extrapolated.
        show = frame.select(
            "strategy",
            "coin",
            "kr_venue",
            "engine",
            "scenario",
            "total_return",
            "max_drawdown",
            pl.col("sharpe").alias(f"sharpe (annualised from {span})"),
            "trades",
            "cost_total",
            "continued",
        )
        context.log.info(f"backtest {day} {scenario}: {frame.height} results, report {html_path}")
        yield Output(
            frame,
            metadata={
                **table_metadata(chain_columns_dropped(frame), preview_rows=0),
                "results": frame_table(show),
                "chain": chain,
                "returns": png_markdown(
                    small_multiples_png(ran.results, ran.strategies), "return per strategy, coin and venue"
                ),
                "html_report": MetadataValue.path(str(html_path)),
                "skipped": list_table(ran.skipped, column="skipped"),
                "notes": list_table(ran.notes, column="note"),
            },
        )

    return backtest_report
