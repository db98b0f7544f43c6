"""Run a job in this process as a run OF THE CODE LOCATION, like a run launched from the Dagster UI.

``JobDefinition.execute_in_process`` creates runs without a repository origin: the UI then leaves them out
of Overview -> Timeline and of each job's Runs tab (both look runs up by the code location they came
from). :func:`execute_in_process` here does the same work, in process, but creates the run with the
remote origin of the ``kimp`` code location of ``workspace.yaml`` (the one ``kimp ui`` serves), so CLI
runs sit beside UI-launched, scheduled and backfilled runs.

It builds on Dagster internals (``create_run_for_job`` with ``remote_job_origin``, ``execute_run``) that
``execute_in_process`` itself uses; ``tests/test_walk_forward_cli.py`` checks the result through the UI's
GraphQL queries, so an upgrade that changes them fails there, not silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from dagster import DagsterInstance, JobDefinition
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.execution.execution_result import ExecutionResult
from dagster._core.remote_origin import CodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from kimp.settings import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
LOCATION = "kimp"


@cache
def code_location_origin() -> CodeLocationOrigin:
    """The origin of the ``kimp`` code location, as the webserver loads it from workspace.yaml."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    origins = {o.location_name: o for o in location_origins_from_yaml_paths([str(WORKSPACE)])}
    if LOCATION not in origins:
        raise ValueError(f"{WORKSPACE}: no code location named {LOCATION!r} (found {sorted(origins)})")
    return origins[LOCATION]


def remote_job_origin(job_name: str) -> RemoteJobOrigin:
    """Where the UI finds ``job_name``: repository ``__repository__`` of the ``kimp`` location."""
    return RemoteJobOrigin(
        RemoteRepositoryOrigin(code_location_origin(), SINGLETON_REPOSITORY_NAME), job_name
    )


def execute_in_process(
    job: JobDefinition,
    *,
    instance: DagsterInstance,
    partition_key: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = False,
) -> ExecutionResult:
    """``job.execute_in_process`` on ``instance`` (the job's own executor must run in process, as kimp's
    jobs do), with the run created as a run of the ``kimp`` code location."""
    run_config = dict(run_config or {})
    run_tags = merge_run_tags(
        job_def=job,
        partition_key=partition_key,  # validated here, as execute_in_process does
        tags=tags,
        asset_selection=None,
        instance=instance,
        run_config=run_config,
    )
    in_memory = InMemoryJob(job)
    plan = create_execution_plan(
        in_memory, run_config=run_config, instance_ref=instance.get_ref() if instance.is_persistent else None
    )
    run = instance.create_run_for_job(
        job_def=job,
        execution_plan=plan,
        run_config=run_config,
        tags=run_tags,
        remote_job_origin=remote_job_origin(job.name),
    )
    return execute_run(in_memory, run, instance, raise_on_error=raise_on_error)
