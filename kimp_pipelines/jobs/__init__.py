"""Jobs, schedules and sensors over the asset graph."""

from kimp_pipelines.jobs.market_data import daily_market_data_schedule, market_data_job
from kimp_pipelines.jobs.sensors import new_market_files

jobs = [market_data_job]
schedules = [daily_market_data_schedule]
sensors = [new_market_files]

__all__ = ["jobs", "schedules", "sensors"]
