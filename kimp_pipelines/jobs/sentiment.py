"""The sentiment job: score the day's headlines (after the market data, before the features)."""

from typing import Any

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)


def build_sentiment_job(partitions: DailyPartitionsDefinition) -> tuple[Any, ScheduleDefinition]:
    """The job and its schedule: 00:45 UTC, after the market data (00:30), before the features (01:00)."""
    job = define_asset_job(
        name="sentiment_job",
        selection=AssetSelection.groups("sentiment"),
        partitions_def=partitions,
        description="Score one UTC day's news headlines with the newest registered kimp-sentiment model.",
        tags={"kimp/layer": "sentiment"},
        executor_def=in_process_executor,
    )
    schedule = build_schedule_from_partitioned_job(
        job,
        name="daily_sentiment",
        hour_of_day=0,
        minute_of_hour=45,
        description="Score yesterday's headlines every day at 00:45 UTC.",
    )
    return job, schedule
