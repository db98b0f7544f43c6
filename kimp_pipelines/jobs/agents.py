"""The daily RL agents' job and its schedule."""

from typing import Any

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from kimp_pipelines.resources.modeling import mlflow_run_failed


def build_agents_job(partitions: DailyPartitionsDefinition) -> tuple[Any, ScheduleDefinition]:
    """``agents_job`` (ppo_agent and dqn_agent of day D) and its daily schedule (off by default)."""
    job = define_asset_job(
        name="agents_job",
        selection=AssetSelection.groups("agents"),
        partitions_def=partitions,
        description="Train the RL agents of day D (PPO, Dueling DQN) on the window before D minus the embargo "
        "and register them; they act on D as the backtest strategies ppo and dqn.",
        tags={"kimp/layer": "agents"},
        # One agent at a time, each with the machine's threads to itself (torch runs on one thread).
        executor_def=in_process_executor,
        hooks={mlflow_run_failed},
    )
    # 02:00 UTC: after yesterday's market data (00:30), before the backtests (03:00).
    schedule = build_schedule_from_partitioned_job(
        job,
        name="daily_agents",
        hour_of_day=2,
        minute_of_hour=0,
        description="Train yesterday's RL agents daily at 02:00 UTC.",
    )
    return job, schedule
