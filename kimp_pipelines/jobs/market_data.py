"""The market-data job and its daily schedule."""

from typing import Any

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)


def build_market_data_job(partitions: DailyPartitionsDefinition) -> tuple[Any, ScheduleDefinition]:
    """The job (define_asset_job's, resolved against the Definitions) and its schedule."""
    job = define_asset_job(
        name="market_data_job",
        selection=AssetSelection.groups("market_data", "premium"),
        partitions_def=partitions,
        description="Every raw market-data table (with its blocking quality checks) and the kimchi premium, for one UTC day.",
        tags={"kimp/layer": "market_data"},
        # Nine light steps: one process avoids paying the stack's imports (Great Expectations ~9 s) per step.
        executor_def=in_process_executor,
    )
    # Runs at 00:30 UTC for yesterday's partition (the last complete UTC day). Off by default so that a
    # local demo never starts work by itself: turn it on in the UI (Automation) or with `dagster schedule start`.
    schedule = build_schedule_from_partitioned_job(
        job,
        name="daily_market_data",
        hour_of_day=0,
        minute_of_hour=30,
        description="Materialize yesterday's market data and premium every day at 00:30 UTC.",
    )
    return job, schedule
