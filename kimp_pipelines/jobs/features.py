"""The feature job and its daily schedule (after the market data of the same day)."""

from dagster import AssetSelection, build_schedule_from_partitioned_job, define_asset_job, in_process_executor

from kimp_pipelines.partitions import daily_partitions

features_job = define_asset_job(
    name="features_job",
    selection=AssetSelection.groups("features"),
    partitions_def=daily_partitions,
    description="The wide feature table and its catalog for one UTC day (reads its look-back days).",
    tags={"kimp/layer": "features"},
    executor_def=in_process_executor,
)

# 01:00 UTC: half an hour after yesterday's market data (00:30) has been materialized.
daily_features_schedule = build_schedule_from_partitioned_job(
    features_job,
    name="daily_features",
    hour_of_day=1,
    minute_of_hour=0,
    description="Compute yesterday's features every day at 01:00 UTC, after the market data.",
)
