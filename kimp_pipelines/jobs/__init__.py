"""Jobs, schedules and sensors over the asset graph."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from kimp_pipelines.partitions import daily_partitions

market_data_job = define_asset_job(
    name="market_data_job",
    selection=AssetSelection.groups("market_data", "premium"),
    partitions_def=daily_partitions,
    description="Every raw market-data table, its quality checks, and the kimchi premium, for one UTC day.",
    tags={"kimp/layer": "market_data"},
)

# Runs at 00:30 UTC for yesterday's partition (the last complete day). Off by default: turn it on in
# the UI (Automation) or start it with KIMP_SCHEDULES=on, so a local demo never starts work by itself.
daily_market_data_schedule = build_schedule_from_partitioned_job(
    market_data_job,
    name="daily_market_data",
    hour_of_day=0,
    minute_of_hour=30,
    description="Materialize yesterday's market data and premium every day at 00:30 UTC.",
)

jobs = [market_data_job]
schedules = [daily_market_data_schedule]
sensors: list = []

__all__ = ["DefaultScheduleStatus", "jobs", "schedules", "sensors"]
