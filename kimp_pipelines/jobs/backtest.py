"""The daily backtest job over (day, scenario) partitions, and its schedule."""

from datetime import timedelta
from typing import Any

from dagster import (
    AssetSelection,
    MultiPartitionKey,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    in_process_executor,
    schedule,
)

from kimp_pipelines.partitions import SCENARIOS, Partitions


def build_backtest_job(partitions: Partitions) -> tuple[Any, ScheduleDefinition]:
    """The job (define_asset_job's, resolved against the Definitions) and its schedule."""
    job = define_asset_job(
        name="backtest_job",
        selection=AssetSelection.assets("backtest_report"),
        partitions_def=partitions.daily_scenario,
        description="Backtest one day under one market scenario: every strategy, both engines, with the report.",
        tags={"kimp/layer": "backtest"},
        executor_def=in_process_executor,
    )

    @schedule(
        job=job,
        cron_schedule="0 3 * * *",
        execution_timezone="UTC",
        description="At 03:00 UTC, backtest yesterday under every scenario (after the retrain's predictions).",
    )
    def daily_backtest_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
        # the last complete UTC day before the tick
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return [
            RunRequest(
                run_key=f"backtest:{day}:{s}", partition_key=MultiPartitionKey({"date": day, "scenario": s})
            )
            for s in SCENARIOS
        ]

    return job, daily_backtest_schedule
