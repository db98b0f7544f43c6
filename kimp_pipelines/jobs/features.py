"""The feature job and its daily schedule (after the market data of the same day)."""

from typing import Any

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)


def build_features_job(partitions: DailyPartitionsDefinition) -> tuple[Any, ScheduleDefinition]:
    """The job (define_asset_job's, resolved against the Definitions) and its schedule."""
    job = define_asset_job(
        name="features_job",
        selection=AssetSelection.groups("features"),
        partitions_def=partitions,
        description="The wide feature table and its catalog for one UTC day (reads its look-back days).",
        tags={"kimp/layer": "features"},
        executor_def=in_process_executor,
    )
    # 01:00 UTC: half an hour after yesterday's market data (00:30) has been materialized.
    schedule = build_schedule_from_partitioned_job(
        job,
        name="daily_features",
        hour_of_day=1,
        minute_of_hour=0,
        description="Compute yesterday's features every day at 01:00 UTC, after the market data.",
    )
    return job, schedule
