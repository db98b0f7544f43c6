"""Jobs, schedules and sensors over the asset graph, built from the settings and partitions.

The daily chain runs on staggered UTC schedules (all off by default): market data 00:30, news sentiment 00:45,
features 01:00, retrain 01:30, RL agents 02:00, backtests 03:00; tuning weekly (Sunday 22:00).
"""

from __future__ import annotations

from typing import Any

from kimp.settings import Settings
from kimp_pipelines.jobs.agents import build_agents_job
from kimp_pipelines.jobs.backtest import build_backtest_job
from kimp_pipelines.jobs.features import build_features_job
from kimp_pipelines.jobs.market_data import build_market_data_job
from kimp_pipelines.jobs.models import build_model_jobs
from kimp_pipelines.jobs.sensors import MAX_DAYS_PER_TICK, build_new_files_sensor
from kimp_pipelines.jobs.sentiment import build_sentiment_job
from kimp_pipelines.partitions import Partitions


def build_jobs(settings: Settings, partitions: Partitions) -> tuple[list[Any], list[Any], list[Any]]:
    """(jobs, schedules, sensors)."""
    market_data_job, market_schedule = build_market_data_job(partitions.daily)
    features_job, features_schedule = build_features_job(partitions.daily)
    model_jobs, model_schedules = build_model_jobs(partitions.daily)
    agents_job, agents_schedule = build_agents_job(partitions.daily)
    backtest_job, backtest_schedule = build_backtest_job(partitions)
    sentiment_job, sentiment_schedule = build_sentiment_job(partitions.daily)
    jobs = [market_data_job, sentiment_job, features_job, *model_jobs, agents_job, backtest_job]
    schedules = [
        market_schedule,
        sentiment_schedule,
        features_schedule,
        *model_schedules,
        agents_schedule,
        backtest_schedule,
    ]
    sensors = [build_new_files_sensor(settings, market_data_job, partitions.daily)]
    return jobs, schedules, sensors


__all__ = ["MAX_DAYS_PER_TICK", "build_jobs"]
