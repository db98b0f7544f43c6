"""Daily retraining (walk-forward), weekly tuning, and the range report of the modeling layer."""

from datetime import timedelta
from typing import Any

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
    schedule,
)

from kimp_pipelines.resources.modeling import mlflow_run_failed


def build_model_jobs(partitions: DailyPartitionsDefinition) -> tuple[list[Any], list[ScheduleDefinition]]:
    """training_job, tuning_job and reports_job, with the daily retrain and weekly tuning schedules."""
    training_job = define_asset_job(
        name="training_job",
        # optuna_study shares the models group (the graph reads data -> ... -> models -> backtest -> reports)
        # but is tuned weekly by tuning_job, not in every retrain.
        selection=AssetSelection.groups("models") - AssetSelection.assets("optuna_study"),
        partitions_def=partitions,
        description="Walk-forward step for day D: training window before D minus the embargo, every model, the "
        "ensemble, out-of-sample predictions for D and their evaluation against the baselines.",
        tags={"kimp/layer": "models"},
        # Two cores: models take turns, each with both threads, instead of competing for them.
        executor_def=in_process_executor,
        hooks={mlflow_run_failed},
    )
    tuning_job = define_asset_job(
        name="tuning_job",
        selection=AssetSelection.assets("training_dataset", "optuna_study"),
        partitions_def=partitions,
        description="Optuna study (TPE, pruning, purged CV) of the tunable models on the training window of D; "
        "daily retrains use the newest study tuned on data before their own day.",
        tags={"kimp/layer": "tuning"},
        executor_def=in_process_executor,
    )
    reports_job = define_asset_job(
        name="reports_job",
        selection=AssetSelection.groups("reports"),
        description="Range reports: model metrics over time against the baselines, and backtests over days.",
        tags={"kimp/layer": "reports"},
        executor_def=in_process_executor,
    )
    # 01:30 UTC: after yesterday's features (01:00). The retrain of day D+1 is trained on data up to D.
    daily_retrain = build_schedule_from_partitioned_job(
        training_job,
        name="daily_retrain",
        hour_of_day=1,
        minute_of_hour=30,
        description="Retrain every model for yesterday's partition and score it out of sample, daily at 01:30 UTC.",
    )

    @schedule(
        job=tuning_job,
        cron_schedule="0 22 * * 0",  # Sunday 22:00 UTC, away from the daily chain
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description="Weekly Optuna study on the newest complete day's training window.",
    )
    def weekly_tuning_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        # the last complete UTC day before the tick
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        # run_key: one study per week even if the tick is evaluated twice
        return RunRequest(run_key=f"tuning:{day}", partition_key=day)

    return [training_job, tuning_job, reports_job], [daily_retrain, weekly_tuning_schedule]  # type: ignore[list-item]
