"""The one Definitions object of kimp: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

from dagster import Definitions

from kimp.settings import Settings
from kimp_pipelines.assets import all_checks, build_assets
from kimp_pipelines.jobs import jobs, schedules, sensors
from kimp_pipelines.resources import build_resources


def build_definitions(settings: Settings | None = None, env: str | None = None) -> Definitions:
    """Assemble everything; resources follow ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    return Definitions(
        assets=build_assets(settings),
        asset_checks=all_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(env, settings),
    )


defs = build_definitions()
