"""Resources of the modeling layer: the walk-forward config, where models and Optuna studies live, and
MLflow through dagster-mlflow (one MLflow run per Dagster run, a nested run per model and day)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableResource,
    Field,
    HookContext,
    InitResourceContext,
    Noneable,
    Permissive,
    StringSource,
    resource,
)
from dagster._core.definitions.decorators.hook_decorator import event_list_hook  # what dagster-mlflow uses


class ModelingResource(ConfigurableResource):
    """Where daily models are written (loaded by path later) and where Optuna studies live."""

    model_dir: str
    optuna_storage: str

    def model_path(self, model: str, day: str) -> Path:
        path = Path(self.model_dir) / model / day
        path.mkdir(parents=True, exist_ok=True)
        return path


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> None:
    """Create the experiment with an explicit artifact location (MLflow's default is ./mlruns under the
    current folder, which would scatter artifacts wherever a run happens to start)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(name) is None:
        if artifact_location:
            Path(artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(name, artifact_location=artifact_location)


# The subset of dagster-mlflow's config kimp sets, plus the artifact location. Declared here so that
# loading the Definitions does not import MLflow (seconds); the resource imports it when a run needs it.
_MLFLOW_CONFIG = {
    "experiment_name": Field(StringSource, description="MLflow experiment name."),
    "mlflow_tracking_uri": Field(Noneable(StringSource), default_value=None, is_required=False),
    "artifact_location": Field(Noneable(StringSource), default_value=None, is_required=False),
    "extra_tags": Field(Permissive(), is_required=False),
}


@resource(
    config_schema=_MLFLOW_CONFIG,
    description="dagster-mlflow's MlFlow tracking, with the experiment's artifact location made explicit.",
)
def kimp_mlflow(context: InitResourceContext) -> Any:
    from dagster_mlflow.resources import MlFlow

    cfg = context.resource_config
    if cfg.get("mlflow_tracking_uri"):
        ensure_experiment(cfg["mlflow_tracking_uri"], cfg["experiment_name"], cfg.get("artifact_location"))
    return MlFlow(context)


@event_list_hook(required_resource_keys={"mlflow"})
def end_mlflow_run(context: HookContext, event_list: list) -> Any:
    """dagster-mlflow's end-of-run hook, importing MLflow only when it runs: the MLflow run of a Dagster
    run ends FAILED with the first failed step, FINISHED after the job's last step."""
    from dagster import HookExecutionResult
    from mlflow.entities.run_status import RunStatus

    for event in event_list:
        if event.is_step_failure:
            context.resources.mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))
        elif event.is_step_success:
            job = context._step_execution_context.job_def  # same access dagster-mlflow's hook uses
            if context.op.name == job.nodes_in_topological_order[-1].name:
                context.resources.mlflow.end_run()
    return HookExecutionResult(hook_name="end_mlflow_run", is_skipped=False)
