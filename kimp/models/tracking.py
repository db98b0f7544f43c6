"""MLflow tracking of kimp's models: one run per model and day, logged as an MLflow model and registered.

``log_trained_model`` opens a run NESTED in the active one (a top-level run when none is active) named
``<model> <day>``, logs params, metrics, tags and plots there, and logs the saved model folder as an
MLflow **pyfunc model** whose loader is kimp's own (:func:`kimp.models.registry.load_model`, through
:func:`_load_pyfunc`), with a signature (``ts``, ``coin`` and the model's features in; ``p_down``,
``p_flat``, ``p_up`` out). It registers it as a new version of ``kimp-<model>`` with a description, tags
(day, training window, feature-set hash, metrics) and the alias ``day-<YYYY-MM-DD>``, so that

    mlflow.pyfunc.load_model("models:/kimp-xgboost/3")           # or "models:/kimp-xgboost@day-2024-03-04"

scores a frame exactly as the model asset's predictions do. ``log_evaluation`` adds the out-of-sample
metrics of a day (``model_evaluation``) to the same runs and versions once they are known.

The experiment is marked as a classic ML experiment (``mlflow.experimentKind``), so MLflow 3's UI opens
it on its runs rather than on the GenAI traces view.

Any object with the ``mlflow`` module's functions works as ``mlflow`` (dagster-mlflow's resource forwards
to the module; tests pass the module itself); ``None`` means the module.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

MODEL_ARTIFACT = "model"
PROBA_COLUMNS: tuple[str, ...] = ("p_down", "p_flat", "p_up")
KEY_INPUTS: tuple[str, ...] = ("ts", "coin")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3 UI: runs, models, metrics (not GenAI traces)
EXPERIMENT_NOTE = (
    "kimp walk-forward: one parent run per Dagster run, one nested run per model and day "
    "(`<model> <day>`), registered as `kimp-<model>` (pyfunc, loadable with "
    "`mlflow.pyfunc.load_model('models:/kimp-<model>/<version>')`). Validation metrics are `val_*`, "
    "out-of-sample metrics of the predicted day `oos_*`."
)
OOS_PREFIX = "oos_"
_MAX_PARAM = 500  # MLflow caps a param value at 6000 chars; keep the UI readable
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def _mlflow(mlflow: Any | None) -> Any:
    if mlflow is not None:
        return mlflow
    import mlflow as module

    return module


def registered_name(model: str) -> str:
    """The registered model of a kimp model: ``kimp-<model>``."""
    return f"kimp-{model}"


def day_alias(day: date) -> str:
    """The alias of the newest version trained for ``day`` (``models:/kimp-<model>@day-YYYY-MM-DD``)."""
    return f"day-{day.isoformat()}"


def run_name(what: str, day: date | str | None = None) -> str:
    """``<model or job> <day>``: what MLflow's run list shows (e.g. ``xgboost 2024-03-04``)."""
    label = day.isoformat() if isinstance(day, date) else day
    return f"{what} {label}" if label else what


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


# --- experiment -------------------------------------------------------------------------------------------


def mark_experiment(experiment_id: str, *, mlflow: Any | None = None) -> None:
    """Set the experiment's kind (MLflow 3's UI then opens it on its runs) and its description, once."""
    client = _mlflow(mlflow).MlflowClient()
    tags = client.get_experiment(experiment_id).tags
    if tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    if "mlflow.note.content" not in tags:
        client.set_experiment_tag(experiment_id, "mlflow.note.content", EXPERIMENT_NOTE)


def ensure_experiment(
    tracking_uri: str, name: str, artifact_location: str | None = None, *, mlflow: Any | None = None
) -> str:
    """The experiment ``name`` (created with an explicit artifact location when missing: MLflow's default
    is ./mlruns under whatever folder a run starts in), marked by :func:`mark_experiment`. Returns its id."""
    mlf = _mlflow(mlflow)
    mlf.set_tracking_uri(tracking_uri)
    experiment = mlf.get_experiment_by_name(name)
    if experiment is None:
        if artifact_location:
            Path(artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        experiment_id = mlf.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mark_experiment(experiment_id, mlflow=mlf)
    return str(experiment_id)


# --- the pyfunc flavour: kimp's own loader --------------------------------------------------------------


class KimpPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: any kimp model, scoring a frame of ``ts``, ``coin`` and
    feature columns (one row per bar and coin, with the bars before them that sequence models need) into
    (p_down, p_flat, p_up) per row, in the input's row order; NaN where the model cannot score a row."""

    def __init__(self, path: Path) -> None:
        from kimp.models.registry import load_model

        self.path = Path(path)
        self.model = load_model(self.path)

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd
        import polars as pl

        frame = model_input if isinstance(model_input, pl.DataFrame) else pl.from_pandas(model_input)
        if frame.schema["ts"].time_zone is None:  # type: ignore[attr-defined]
            # MLflow's schema holds timezone-naive datetimes: kimp's ts is UTC.
            frame = frame.with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        # kimp's models expect rows sorted by coin then time; answer in the caller's order.
        order = frame.with_row_index("_row").sort(["coin", "ts"])
        proba = np.asarray(self.model.predict_proba(order.drop("_row")), dtype=np.float64)
        out = np.empty_like(proba)
        out[order["_row"].to_numpy()] = proba
        return pd.DataFrame(out, columns=list(PROBA_COLUMNS), index=getattr(model_input, "index", None))


def pyfunc_input(frame: Any) -> Any:
    """A kimp frame (polars, ``ts`` in UTC) as the pandas frame a logged model's signature accepts: MLflow
    datetimes are timezone-naive, so ``ts`` becomes naive UTC (the model reads it back as UTC)."""
    import polars as pl

    if frame.schema["ts"].time_zone is not None:
        frame = frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None))
    return frame.to_pandas()


def _example_columns(frame: Any, features: Sequence[str]) -> list[str]:
    return [c for c in (*KEY_INPUTS, *features) if c in frame.columns]


def _load_pyfunc(data_path: str) -> KimpPyfunc:
    """MLflow's ``loader_module`` entry point (``loader_module: kimp.models.tracking`` in the MLmodel)."""
    return KimpPyfunc(Path(data_path))


def model_signature(features: Sequence[str]) -> Any:
    """Input: ``ts`` (naive UTC datetime: MLflow's schema has no time zones; see :func:`pyfunc_input`), ``coin`` and each feature (double, may be absent: a missing feature is
    null, as for kimp's own scoring); output: the three class probabilities."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = [ColSpec("datetime", "ts"), ColSpec("string", "coin")]
    inputs += [ColSpec("double", f, required=False) for f in features if f not in KEY_INPUTS]
    return ModelSignature(
        inputs=Schema(inputs), outputs=Schema([ColSpec("double", c) for c in PROBA_COLUMNS])
    )


def features_hash(features: Sequence[str]) -> str:
    """Short hash of the exact input columns a model reads (two versions with the same hash take the same
    inputs)."""
    return hashlib.sha256("\n".join(features).encode()).hexdigest()[:12]


def _pip_requirements(model_dir: Path) -> list[str]:
    """What loading needs, pinned to this environment (MLflow's own inference would load the model in a
    subprocess): kimp itself plus the libraries of the model's type."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["kimp", "numpy", "pandas", "polars", "scikit-learn", "scipy"]
    files = {p.name for p in model_dir.rglob("*")}
    if any(f.endswith(".xgb.json") or "xgboost" in f for f in files):
        names.append("xgboost")
    if any(f.endswith(".lgb.txt") or "lightgbm" in f for f in files):
        names.append("lightgbm")
    if any(f.endswith(".pt") for f in files):
        names.append("torch")
    out = []
    for n in names:
        try:
            out.append(f"{n}=={version(n)}")
        except PackageNotFoundError:
            out.append(n)
    return out


# --- logging ---------------------------------------------------------------------------------------------


def log_to_active_run(
    model_dir: Path | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    artifacts: Sequence[Path] = (),
    tags: Mapping[str, str] | None = None,
    mlflow: Any | None = None,
) -> str | None:
    """Log to the ACTIVE run: params, metrics, tags, extra artifact files (plots, under ``plots/``) and,
    when given, a model folder's raw files under ``model/``. Returns that folder's artifact URI."""
    mlf = _mlflow(mlflow)
    if mlf.active_run() is None:
        raise RuntimeError("no active MLflow run: start one (mlflow.start_run) or use log_trained_model")
    if params:
        items = list(_clean_params(params).items())
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlf.log_params(dict(items[i : i + 100]))
    if metrics:
        mlf.log_metrics(_clean_metrics(metrics))
    if tags:
        mlf.set_tags(dict(tags))
    for path in artifacts:
        mlf.log_artifact(str(path), artifact_path="plots")
    if model_dir is None:
        return None
    mlf.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT)
    return str(mlf.get_artifact_uri(MODEL_ARTIFACT))


def register_version(
    name: str,
    source_uri: str,
    run_id: str,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    alias: str | None = None,
    mlflow: Any | None = None,
) -> str:
    """A new version of the registered model ``name`` (created when missing) from ``source_uri`` (a logged
    MLflow model), with its description, tags and alias. Returns the version."""
    mlf = _mlflow(mlflow)
    from mlflow.exceptions import MlflowException

    client = mlf.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description=f"kimp's `{name.removeprefix('kimp-')}` direction model, one version per training "
            "day (alias `day-YYYY-MM-DD`). Input: ts, coin and the model's features; output: p_down, "
            "p_flat, p_up of the kimchi premium over the horizon.",
        )
    version = client.create_model_version(
        name, source=source_uri, run_id=run_id, tags=dict(tags or {}), description=description
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def describe(
    name: str,
    day: date,
    *,
    features: int,
    window: str | None,
    feature_set: str | None,
    metrics: Mapping[str, float],
) -> str:
    """The version's description: what it is, what it was trained on, how it validated, how to load it."""
    shown = ", ".join(f"{k.removeprefix('val_')} {v:.4g}" for k, v in sorted(metrics.items()))
    parts = [
        f"`{name}` direction model for {day.isoformat()}: scores each bar of that day out of sample.",
        f"Trained on {window}." if window else "",
        f"{features} input features" + (f" of feature set `{feature_set}`." if feature_set else "."),
        f"Validation: {shown}." if shown else "",
        "Load: `mlflow.pyfunc.load_model(model_uri)`; input ts, coin and the features (with the earlier "
        "bars sequence models need); output p_down, p_flat, p_up per row.",
    ]
    return " ".join(p for p in parts if p)


def _validation_name(key: str) -> str:
    return key if key.startswith(("val_", OOS_PREFIX, "test_")) else f"val_{key}"


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
    window: str | None = None,
    feature_set: str | None = None,
    description: str | None = None,
    input_example: Any | None = None,
) -> tuple[str, str | None]:
    """Log one saved model in a run nested in the active one and register it as ``kimp-<name>``.

    A direction model (a folder ``kimp.models.registry.load_model`` reads) is logged as an MLflow pyfunc
    model with a signature; its ``metrics`` are validation metrics, logged (and tagged on the version) as
    ``val_<name>`` unless already prefixed (``val_``, ``oos_``, ``test_``). Any other model folder (e.g.
    ``kimp-sentiment``, the registry's text model) is logged as its files, metrics as given.
    ``window`` says what it was trained on (e.g. ``2024-03-01..2024-03-03``); ``feature_set`` is the
    feature catalog's hash; ``description`` replaces the generated one; ``input_example`` (a polars frame
    the model scores, e.g. its training rows) is stored with the model (first rows only).
    Returns (run_id, registered version or None).
    """
    mlf = _mlflow(mlflow)
    from mlflow import pyfunc

    from kimp.models.registry import FRAME_KINDS, load_model, saved_kind

    model_dir = Path(model_dir)
    # a direction or regression model is served by pyfunc with its feature signature; a text model (or any
    # other folder) is logged as its files, which its spec's loader reads
    model = load_model(model_dir) if saved_kind(model_dir) in FRAME_KINDS else None
    if model is None:
        return _log_files(mlf, name, day, model_dir, params, metrics, artifacts, tags, register, description)
    features = list(model.features)
    parent = mlf.active_run()
    # The child lives in its parent's experiment (MLflow would otherwise use the active/default experiment).
    experiment_id = parent.info.experiment_id if parent is not None else None
    clean = {_validation_name(k): v for k, v in _clean_metrics(metrics or {}).items()}
    day_tags = {
        "model": name,
        "day": day.isoformat(),
        "features": str(len(features)),
        "features_hash": features_hash(features),
        **({"window": window} if window else {}),
        **({"feature_set": feature_set} if feature_set else {}),
    }
    with mlf.start_run(
        run_name=run_name(name, day), nested=parent is not None, experiment_id=experiment_id
    ) as run:
        mark_experiment(run.info.experiment_id, mlflow=mlf)
        log_to_active_run(
            params=params, metrics=clean, artifacts=artifacts, tags={**day_tags, **(tags or {})}, mlflow=mlf
        )
        with warnings.catch_warnings():  # the signature is explicit; an example is optional
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = pyfunc.log_model(
                name=MODEL_ARTIFACT,
                loader_module=__name__,
                data_path=str(model_dir),
                signature=model_signature(features),
                pip_requirements=_pip_requirements(model_dir),
                input_example=None
                if input_example is None
                else pyfunc_input(input_example.select(_example_columns(input_example, features)).head(3)),
                metadata={"kimp_model": name, "day": day.isoformat()},
            )
        run_id = run.info.run_id
        version = None
        if register:
            metric_tags = {k: f"{v:.6g}" for k, v in clean.items()}
            version = register_version(
                registered_name(name),
                info.model_uri,
                run_id,
                description=description
                or describe(
                    name, day, features=len(features), window=window, feature_set=feature_set, metrics=clean
                ),
                tags={**day_tags, **metric_tags, **(tags or {})},
                alias=day_alias(day),
                mlflow=mlf,
            )
    return run_id, version


def _log_files(
    mlf: Any,
    name: str,
    day: date,
    model_dir: Path,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    artifacts: Sequence[Path],
    tags: Mapping[str, str] | None,
    register: bool,
    description: str | None,
) -> tuple[str, str | None]:
    """A model kimp's direction-model loader does not read: its folder logged under ``model/`` and
    registered from there (the version's source is that folder)."""
    parent = mlf.active_run()
    experiment_id = parent.info.experiment_id if parent is not None else None
    day_tags = {"model": name, "day": day.isoformat(), **(tags or {})}
    with mlf.start_run(
        run_name=run_name(name, day), nested=parent is not None, experiment_id=experiment_id
    ) as run:
        mark_experiment(run.info.experiment_id, mlflow=mlf)
        uri = log_to_active_run(
            model_dir, params=params, metrics=metrics, artifacts=artifacts, tags=day_tags, mlflow=mlf
        )
        version = None
        if register:
            version = register_version(
                registered_name(name),
                str(uri),
                run.info.run_id,
                description=description
                or f"`{name}` model trained on {day.isoformat()} (files of its folder).",
                tags=day_tags,
                alias=day_alias(day),
                mlflow=mlf,
            )
    return run.info.run_id, version


def log_evaluation(
    metrics: Any,
    *,
    day: date,
    mlflow: Any | None = None,
    experiment_ids: Sequence[str] | None = None,
) -> dict[str, str]:
    """Out-of-sample metrics of ``day`` (``model_evaluation`` rows: a ``model`` column and numeric metric
    columns, or a mapping model -> metrics) logged as ``oos_<metric>`` to each model's run of that day
    (tagged model/day by :func:`log_trained_model`, newest first) and as tags of its registered version.
    Models without such a run (e.g. baselines never logged) are skipped. Returns model -> run id."""
    mlf = _mlflow(mlflow)
    client = mlf.MlflowClient()
    rows: dict[str, Mapping[str, Any]] = (
        {r["model"]: r for r in metrics.iter_rows(named=True)} if hasattr(metrics, "iter_rows") else metrics
    )
    if experiment_ids is None:
        active = mlf.active_run()
        experiment_ids = (
            [active.info.experiment_id] if active else [e.experiment_id for e in client.search_experiments()]
        )
    done: dict[str, str] = {}
    for model, values in rows.items():
        found = client.search_runs(
            list(experiment_ids),
            filter_string=f"tags.model = '{model}' AND tags.day = '{day.isoformat()}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            continue
        run_id = found[0].info.run_id
        clean = {
            f"{OOS_PREFIX}{k}": v for k, v in _clean_metrics(values).items() if not k.startswith(OOS_PREFIX)
        }
        from mlflow.entities import Metric

        now = _now_ms()
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in clean.items()])
        for mv in client.search_model_versions(f"name = '{registered_name(model)}' AND run_id = '{run_id}'"):
            for k, v in clean.items():
                client.set_model_version_tag(mv.name, mv.version, k, f"{v:.6g}")
        done[model] = run_id
    return done


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
