"""Jobs, schedules and sensors over the asset graph.

The daily chain runs on staggered UTC schedules (all off by default): market data 00:30, features 01:00,
retrain 01:30, backtests 03:00; tuning weekly (Sunday 22:00).
"""

from kimp_pipelines.jobs.backtest import backtest_job, daily_backtest_schedule
from kimp_pipelines.jobs.features import daily_features_schedule, features_job
from kimp_pipelines.jobs.market_data import daily_market_data_schedule, market_data_job
from kimp_pipelines.jobs.models import (
    daily_retrain_schedule,
    reports_job,
    training_job,
    tuning_job,
    weekly_tuning_schedule,
)
from kimp_pipelines.jobs.sensors import new_market_files

jobs = [market_data_job, features_job, tuning_job, training_job, backtest_job, reports_job]
schedules = [
    daily_market_data_schedule,
    daily_features_schedule,
    daily_retrain_schedule,
    weekly_tuning_schedule,
    daily_backtest_schedule,
]
sensors = [new_market_files]

__all__ = ["jobs", "schedules", "sensors"]
