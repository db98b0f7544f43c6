"""The one daily partitioning of kimp: UTC days from KIMP_START_DATE (default 2017-08-17)."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from kimp.settings import Settings

daily_partitions = DailyPartitionsDefinition(
    start_date=Settings.from_env().start_date.isoformat(),
    timezone="UTC",
    fmt="%Y-%m-%d",
)
