"""MLflow helpers: log a trained model's params, metrics and artifacts, and register a model version.

The Dagster layer opens one MLflow run per Dagster run (dagster-mlflow) and passes its ``mlflow`` resource,
which forwards to the ``mlflow`` module; any object with the module's functions works (tests pass the module
itself). ``log_trained_model`` opens a run NESTED in the active one (a top-level run when none is active),
logs everything there and registers the logged model folder as a new version of ``kimp-<name>``.

Registration uses ``MlflowClient.create_model_version`` with the artifact folder as source: the folder holds
the model's own files (native booster files + model.json, loadable with kimp.models.registry.load_model),
not an MLflow "flavor", and ``mlflow.register_model`` on a ``runs:/`` URI demands a logged MLflow model. It
works offline with a sqlite tracking store.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

MODEL_ARTIFACT = "model"
_MAX_PARAM = 500  # MLflow caps a param value at 6000 chars; keep the UI readable
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def _mlflow(mlflow: Any | None) -> Any:
    if mlflow is not None:
        return mlflow
    import mlflow as module

    return module


def _clean_params(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        out[_KEY.sub("_", str(k))] = text[:_MAX_PARAM]
    return out


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric, finite metrics only (NaN or a JSON confusion matrix is not a metric)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            continue
        if v == v and abs(v) != float("inf"):
            out[_KEY.sub("_", str(k))] = float(v)
    return out


def log_to_active_run(
    model_dir: Path,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    artifacts: Sequence[Path] = (),
    tags: Mapping[str, str] | None = None,
    mlflow: Any | None = None,
) -> str:
    """Log to the ACTIVE run: params, metrics, the model folder (under ``model/``) and extra artifact files
    (plots, confusion matrix). Returns the model folder's artifact URI."""
    mlf = _mlflow(mlflow)
    run = mlf.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: start one (mlflow.start_run) or use log_trained_model")
    if params:
        cleaned = _clean_params(params)
        items = list(cleaned.items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlf.log_params(dict(items[i : i + 100]))
    if metrics:
        mlf.log_metrics(_clean_metrics(metrics))
    if tags:
        mlf.set_tags(dict(tags))
    mlf.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT)
    for path in artifacts:
        mlf.log_artifact(str(path), artifact_path="plots")
    return str(mlf.get_artifact_uri(MODEL_ARTIFACT))


def register_version(registered_name: str, source_uri: str, run_id: str, *, mlflow: Any | None = None) -> str:
    """A new version of ``registered_name`` (created when missing) pointing at ``source_uri``."""
    mlf = _mlflow(mlflow)
    from mlflow.exceptions import MlflowException

    client = mlf.MlflowClient()
    try:
        client.get_registered_model(registered_name)
    except MlflowException:
        client.create_registered_model(registered_name)
    version = client.create_model_version(registered_name, source=source_uri, run_id=run_id)
    return str(version.version)


def log_trained_model(
    mlflow: Any | None,
    *,
    name: str,
    day: date,
    model_dir: Path,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    artifacts: Sequence[Path] = (),
    tags: Mapping[str, str] | None = None,
    register: bool = True,
) -> tuple[str, str | None]:
    """Log one saved model in a run nested in the active one; register it as ``kimp-<name>``.

    Returns (run_id, registered version or None).
    """
    mlf = _mlflow(mlflow)
    parent = mlf.active_run()
    # The child lives in its parent's experiment (MLflow would otherwise use the active/default experiment).
    experiment_id = parent.info.experiment_id if parent is not None else None
    with mlf.start_run(
        run_name=f"{name}-{day.isoformat()}", nested=parent is not None, experiment_id=experiment_id
    ) as run:
        uri = log_to_active_run(
            model_dir,
            params=params,
            metrics=metrics,
            artifacts=artifacts,
            tags={"model": name, "day": day.isoformat(), **(tags or {})},
            mlflow=mlf,
        )
        run_id = run.info.run_id
        version = register_version(f"kimp-{name}", uri, run_id, mlflow=mlf) if register else None
    return run_id, version
