"""The one Definitions of kimp, built from a Settings object: partitions, resources, assets, jobs,
schedules and sensors.

``build_definitions(settings)`` is what the CLI and the tests call with the settings they hold;
``defs`` is the lazily loaded entry point of the code location (workspace.yaml, ``dagster dev``): Dagster
calls it when it loads the location, and only then are the settings read from the environment.
"""

from __future__ import annotations

import importlib

from dagster import Definitions, definitions

from kimp.settings import Settings
from kimp_pipelines.assets import build_assets
from kimp_pipelines.jobs import build_jobs
from kimp_pipelines.partitions import Partitions
from kimp_pipelines.resources import build_resources


def load_plugins(settings: Settings) -> None:
    """Import the modules named in ``settings.plugins`` (KIMP_PLUGINS): each registers its models or
    strategies, which the definitions built next then include."""
    for module in settings.plugins:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"KIMP_PLUGINS names {module!r}, which cannot be imported: {exc}") from exc


def build_definitions(settings: Settings) -> Definitions:
    """Everything, from ``settings``: nothing here reads the environment."""
    load_plugins(settings)
    partitions = Partitions.from_settings(settings)
    jobs, schedules, sensors = build_jobs(settings, partitions)
    return Definitions(
        assets=build_assets(settings, partitions),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
    )


@definitions
def defs() -> Definitions:
    """The code location's Definitions, with the settings of the environment it is loaded in."""
    return build_definitions(Settings.from_env())
