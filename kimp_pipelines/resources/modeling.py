"""Resources of the modeling layer: where models and Optuna studies live, and MLflow tracking.

MLflow: one MLflow run per Dagster run (tagged ``kimp.dagster_run`` with its run id, named after its
job), and a run nested in it per model and day with params, validation metrics, the model's files and
plots, registered as a version of ``kimp-<model>`` (kimp.models.tracking). The Dagster run's MLflow run
is resumed by each model asset and ends FINISHED; the ``mlflow_run_failed`` hook ends it FAILED when a
step fails. MLflow is imported only when a run logs something (seconds of import otherwise paid by
every load of the definitions).
"""

from datetime import date
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, HookContext, failure_hook

EXPERIMENT = "kimp"
PARENT_TAG = "kimp.dagster_run"


class ModelingResource(ConfigurableResource):
    """Where daily models are written (loaded by path later) and where Optuna studies live."""

    model_dir: str
    optuna_storage: str

    def model_path(self, model: str, day: str) -> Path:
        path = Path(self.model_dir) / model / day
        path.mkdir(parents=True, exist_ok=True)
        return path


class MlflowResource(ConfigurableResource):
    """MLflow tracking for the model assets (module docstring). ``artifact_location``: where a new
    experiment keeps its artifacts (MLflow's default, ./mlruns under whatever folder a run starts in,
    would scatter them); None lets a tracking server decide."""

    tracking_uri: str
    artifact_location: str | None = None
    experiment_name: str = EXPERIMENT

    def _client(self) -> Any:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        from kimp.models.tracking import ensure_experiment

        return ensure_experiment(self.tracking_uri, self.experiment_name, self.artifact_location)

    def dagster_run(self, run_id: str, job_name: str | None = None, *, create: bool = True) -> str | None:
        """The MLflow run of Dagster run ``run_id`` (created when missing and ``create``)."""
        client = self._client()
        experiment = self.experiment_id()
        found = client.search_runs(
            [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=1
        )
        if found:
            return str(found[0].info.run_id)
        if not create:
            return None
        run = client.create_run(
            experiment, run_name=job_name or run_id[:8], tags={PARENT_TAG: run_id, "dagster_run_id": run_id}
        )
        return str(run.info.run_id)

    def log_model(
        self,
        context: Any,
        *,
        name: str,
        day: date,
        model_dir: Path,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        artifacts: list[Path] | tuple[Path, ...] = (),
        tags: dict[str, str] | None = None,
        **details: Any,
    ) -> tuple[str, str | None]:
        """Log one saved model in a run nested in the Dagster run's MLflow run; register it as
        ``kimp-<name>`` (kimp.models.tracking.log_trained_model; ``details``: its window, feature_set,
        input_example). Returns (run id, registered version)."""
        import mlflow

        from kimp.models.tracking import log_trained_model, run_name

        run = context.run
        # the Dagster run's MLflow run says its job and day ('training_job 2024-03-04'), as its children
        # say their model and day: a run list of the same job name on every row tells nothing
        parent = self.dagster_run(run.run_id, run_name(run.job_name, str(context.partition_key)))
        with mlflow.start_run(run_id=parent):
            return log_trained_model(
                mlflow,
                name=name,
                day=day,
                model_dir=model_dir,
                params=params,
                metrics=metrics,
                artifacts=list(artifacts),
                tags={
                    "dagster_run_id": run.run_id,
                    "partition": str(context.partition_key),
                    **(tags or {}),
                },
                **details,
            )

    def log_evaluation(self, metrics: Any, *, day: date) -> dict[str, str]:
        """The day's out-of-sample metrics to each model's run and version of that day."""
        import mlflow

        from kimp.models.tracking import log_evaluation

        experiment = self.experiment_id()
        return log_evaluation(metrics, day=day, mlflow=mlflow, experiment_ids=[experiment])

    def end_dagster_run(self, run_id: str, status: str) -> None:
        parent = self.dagster_run(run_id, create=False)
        if parent is not None:
            self._client().set_terminated(parent, status=status)


@failure_hook(required_resource_keys={"mlflow"})
def mlflow_run_failed(context: HookContext) -> None:
    """A failed step ends the Dagster run's MLflow run FAILED (model assets end it FINISHED as they log)."""
    context.resources.mlflow.end_dagster_run(context.run_id, "FAILED")
