"""The modeling layer's daily assets, generated from the model registry (kimp.models.registry).

training_dataset(D) -> one ``<name>_model`` per configured member (``WalkForwardConfig.models``; a member
whose features another ranks reads that one's card) and ``baseline_models`` (every registered baseline)
-> ensemble(D) -> predictions(D) -> model_evaluation(D); optuna_study(D) (kimp_pipelines.assets.tuning) is
tuned weekly and read by later retrains of tunable models.

Each asset runs one step of the walk-forward in kimp.models.walk_forward (the only implementation; the
tests materialize these assets). Each model asset saves its model under ``$KIMP_HOME/models/<model>/<day>/``
(loaded by path later, through the registry), logs params, validation metrics and files to MLflow in a run
nested in the Dagster run's MLflow run, registers a version of ``kimp-<model>``, and returns a one-row
model card (what was trained, on what, how it validated).

A model kind other than ``direction`` gets its assets from the factory registered for its kind
(:func:`register_asset_factory`).
"""

import json
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from kimp.models import registry
from kimp.models.base import CLASSES, WalkForwardConfig
from kimp.models.registry import ModelSpec
from kimp.timeutil import parse_day
from kimp_pipelines.assets.metadata import png_markdown, table_metadata
from kimp_pipelines.resources.io_manager import ALLOW_MISSING
from kimp_pipelines.resources.modeling import MlflowResource, ModelingResource

GROUP = "models"
# Sequence models score a bar from the bars before it: 4 days covers the LSTM's 50 steps on hourly bars
# (gaps included); the premium of D-1 gives the first bars of D their last move.
PREDICTION_HISTORY_DAYS = 4
STUDY_LOOKBACK_DAYS = 7  # a retrain reads the newest study of the last week (a soft dependency)


def _window(start_offset: int, end_offset: int) -> AssetIn:
    return AssetIn(
        partition_mapping=TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
        ),
        metadata={ALLOW_MISSING: True},
    )


def _md(frame: pl.DataFrame) -> str:
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=50,
        tbl_cols=20,
        float_precision=4,
    ):
        return str(frame)


def card(
    model: str,
    day: date,
    config: WalkForwardConfig,
    *,
    path: Path | None,
    status: str = "trained",
    train_rows: int = 0,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
    version: str | None = None,
) -> pl.DataFrame:
    """The one-row model card every model asset returns."""
    m = metrics or {}
    return pl.DataFrame(
        {
            "day": [day],
            "model": [model],
            "horizon": [config.horizon_minutes],
            "status": [status],
            "path": [str(path) if path else None],
            "train_rows": [train_rows],
            "val_log_loss": [m.get("log_loss")],
            "val_macro_f1": [m.get("macro_f1")],
            "val_accuracy": [m.get("accuracy")],
            "params": [json.dumps(params or {}, default=str, sort_keys=True)],
            "mlflow_run_id": [run_id],
            "registered_version": [version],
        },
        schema_overrides={"val_log_loss": pl.Float64, "val_macro_f1": pl.Float64, "val_accuracy": pl.Float64},
    )


def trained_models(*cards: pl.DataFrame) -> dict[str, Any]:
    """The models of the cards' trained rows, loaded from their folders through the registry."""
    out = {}
    for frame in cards:
        for row in frame.iter_rows(named=True):
            if row["status"] == "trained" and row["path"]:
                out[row["model"]] = registry.load_model(Path(row["path"]))
    return out


def _fit_and_log(
    context: AssetExecutionContext,
    spec: ModelSpec,
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    modeling: ModelingResource,
    mlflow: MlflowResource,
    *,
    fitted: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    extra_params: dict[str, Any] | None = None,
    feature_set: str | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One model of day D: fit (walk_forward.fit_member), save, log to MLflow; its card and metadata."""
    from kimp.models.boosting import importance_png
    from kimp.models.walk_forward import fit_member

    day = parse_day(context.partition_key)
    fit = fit_member(spec, frame, config, fitted=fitted, params=params)
    path = registry.save_model(spec.name, fit.model, modeling.model_path(spec.name, day.isoformat()))
    metrics = {k: v for k, v in fit.validation.items() if k in ("log_loss", "macro_f1", "accuracy")}
    logged = {
        **(getattr(fit.model, "params", None) or {}),
        **(extra_params or {}),
        "features": len(fit.features),
        "feature_rule": fit.feature_rule,
        "temperature": round(fit.temperature, 4),
    }
    meta: dict[str, Any] = {
        **{f"val_{k}": round(v, 4) for k, v in fit.validation.items()},
        "temperature": round(fit.temperature, 4),
        "feature_rule": fit.feature_rule,
        "features_used": MetadataValue.json(fit.features),
        "model_path": str(path),
    }
    artifacts = []
    importance = getattr(fit.model, "importance", None)
    if isinstance(importance, pl.DataFrame) and importance.height:
        png = importance_png(importance, path / "importance.png", title=f"{spec.name} {day}: importance")
        artifacts.append(png)
        meta["importance"] = png_markdown(Path(png).read_bytes(), f"{spec.name} importance")
        meta["top_features"] = MetadataValue.md(_md(importance.head(10)))
    train = frame.filter(pl.col("split") == "train")
    run_id, version = mlflow.log_model(
        context,
        name=spec.name,
        day=day,
        model_dir=path,
        params=logged,
        metrics=metrics,
        artifacts=artifacts,
        window=f"{train['ts'].min():%Y-%m-%d %H:%M}..{train['ts'].max():%Y-%m-%d %H:%M} UTC",
        feature_set=feature_set,
        input_example=train.head(3),
    )
    meta["mlflow_run_id"] = run_id or ""
    context.log.info(
        f"{spec.name} {day}: {fit.feature_rule}, validation {metrics}, T={fit.temperature:.3f}; "
        f"MLflow run {run_id}, kimp-{spec.name} version {version}"
    )
    frame_card = card(
        spec.name,
        day,
        config,
        path=path,
        train_rows=fit.train_rows,
        metrics=metrics,
        params=logged,
        run_id=run_id,
        version=version,
    )
    return frame_card, meta


def direction_member_asset(
    spec: ModelSpec,
    config: WalkForwardConfig,
    partitions: DailyPartitionsDefinition,
    feature_set: str | None = None,
) -> AssetsDefinition:
    """``<name>_model``: the member fitted on training_dataset(D), with the newest study's parameters when
    it is tunable, and the cards of the models that rank its features as inputs."""
    rankers = [n for n in spec.depends_on if n in config.models]
    deps = []
    if spec.tunable:
        deps.append(
            AssetDep(
                "optuna_study",
                partition_mapping=TimeWindowPartitionMapping(
                    start_offset=-STUDY_LOOKBACK_DAYS,
                    end_offset=0,
                    allow_nonexistent_upstream_partitions=True,
                ),
            )
        )

    @asset(
        name=f"{spec.name}_model",
        partitions_def=partitions,
        group_name=GROUP,
        kinds={*spec.asset_kinds, "mlflow"},
        ins={"training_dataset": AssetIn(), **{f"{n}_model": AssetIn() for n in rankers}},
        deps=deps,
        description=f"{spec.description or spec.name}: the member of day D, fitted on the train rows of "
        "training_dataset(D), scored and calibrated on its validation rows, registered in MLflow.",
    )
    def _model(
        context: AssetExecutionContext,
        modeling: ModelingResource,
        mlflow: MlflowResource,
        training_dataset: pl.DataFrame,
        **ranking_cards: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        from kimp.models.studies import latest_study
        from kimp.models.tuning import best_params

        day = parse_day(context.partition_key)
        study = latest_study(modeling.optuna_storage, spec.name, day, config) if spec.tunable else None
        tuned = best_params(modeling.optuna_storage, study) if study else None
        fitted = trained_models(*ranking_cards.values())
        frame_card, meta = _fit_and_log(
            context,
            spec,
            training_dataset,
            config,
            modeling,
            mlflow,
            fitted=fitted,
            params=tuned,
            extra_params={"study": study or "defaults"} if spec.tunable else None,
            feature_set=feature_set,
        )
        if spec.tunable:
            meta["tuned_by"] = study or "defaults"
        return Output(frame_card, metadata=meta)

    return _model


# factory(spec, config, partitions, feature_set) -> the member's asset
AssetFactory = Callable[
    [ModelSpec, WalkForwardConfig, DailyPartitionsDefinition, str | None], AssetsDefinition
]
ASSET_FACTORIES: dict[str, AssetFactory] = {"direction": direction_member_asset}


def register_asset_factory(kind: str, factory: AssetFactory) -> None:
    """The asset of each member of ``kind`` (a later model kind: text, agent) comes from ``factory``."""
    ASSET_FACTORIES[kind] = factory


def _training_dataset_asset(
    config: WalkForwardConfig, partitions: DailyPartitionsDefinition
) -> AssetsDefinition:
    # The window's partition mapping is fixed when the Definitions are built, from config.window_days.
    window = _window(-(config.window_days + 1), -1)

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        ins={"features": window, "kimchi_premium": window},
    )
    def training_dataset(
        context: AssetExecutionContext, features: pl.DataFrame, kimchi_premium: pl.DataFrame
    ) -> Output[pl.DataFrame]:
        """Features joined with labels for the window that ends before D minus the embargo, split train /
        validation / test (70/15/15, purged, embargoed). Never holds a label known on or after the cutoff."""
        from kimp.models.dataset import cutoff
        from kimp.models.walk_forward import training_dataset as make

        day = parse_day(context.partition_key)
        frame = make(features, kimchi_premium, day=day, config=config)
        end, latest = cutoff(day, config), frame["label_known_at"].max()
        balance = (
            frame.filter(pl.col("split").is_not_null())
            .group_by("split", "label")
            .len()
            .sort("split", "label")
            .with_columns(
                label=pl.col("label").replace_strict(list(range(3)), list(CLASSES), return_dtype=pl.String)
            )
        )
        balance_md = _md(balance.pivot(on="label", index="split", values="len"))
        context.log.info(
            f"training_dataset {day}: {frame.height} rows, cutoff {end}, last label known {latest}; {balance_md}"
        )
        meta = table_metadata(frame.select("ts", "coin", "label", "label_known_at", "split"))
        meta.update(
            {
                "cutoff": end.isoformat(),
                "last_label_known_at": latest.isoformat() if latest else None,  # type: ignore[union-attr]
                "window_days": config.window_days,
                "embargo_minutes": config.embargo,
                "horizon_minutes": config.horizon_minutes,
                "class_balance": MetadataValue.md(balance_md),
            }
        )
        meta.update(_stationarity(frame))
        return Output(frame, metadata=meta)

    return training_dataset


def _stationarity(frame: pl.DataFrame) -> dict[str, Any]:
    """ADF report of the training window's features (kimp.features.adf_report), summarised for metadata."""
    from kimp.features import adf_report
    from kimp.models.dataset import feature_columns

    train = frame.filter(pl.col("split") == "train")
    with warnings.catch_warnings():  # near-constant features make statsmodels warn once per column
        warnings.simplefilter("ignore")
        report = adf_report(train, feature_columns(train))
    if report.height == 0:
        return {}
    share = float(report["stationary"].mean() or 0.0)  # type: ignore[arg-type]
    worst = report.sort("p_value", descending=True, nulls_last=True).head(15)
    return {"adf_stationary_share": round(share, 4), "adf_least_stationary": MetadataValue.md(_md(worst))}


def _baselines_asset(
    config: WalkForwardConfig, partitions: DailyPartitionsDefinition, feature_set: str | None
) -> AssetsDefinition:
    baselines = registry.specs(kind="direction", role="baseline")

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"scikitlearn", "mlflow"},
        description="Baselines every model is reported beside ("
        + "; ".join(f"{s.name}: {s.description}" for s in baselines)
        + "), fitted on the same train rows, calibrated like the members.",
    )
    def baseline_models(
        context: AssetExecutionContext,
        modeling: ModelingResource,
        mlflow: MlflowResource,
        training_dataset: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        cards = [
            _fit_and_log(context, spec, training_dataset, config, modeling, mlflow, feature_set=feature_set)[
                0
            ]
            for spec in baselines
        ]
        frame = pl.concat(cards)
        summary = frame.select("model", "val_log_loss", "val_macro_f1", "val_accuracy")
        return Output(frame, metadata={"baselines": MetadataValue.md(_md(summary))})

    return baseline_models


def _ensemble_asset(
    config: WalkForwardConfig, members: list[str], partitions: DailyPartitionsDefinition
) -> AssetsDefinition:
    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"mlflow"},
        ins={
            "training_dataset": AssetIn(),
            "baseline_models": AssetIn(),
            **{f"{n}_model": AssetIn() for n in members},
        },
    )
    def ensemble(
        context: AssetExecutionContext,
        modeling: ModelingResource,
        mlflow: MlflowResource,
        training_dataset: pl.DataFrame,
        baseline_models: pl.DataFrame,
        **member_cards: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        """The day's ensemble: the weighted mixture of its members (weights minimise log-loss on the
        VALIDATION rows all its members scored; a member that scores too few is left out, metadata says why),
        or, when a member or a baseline validates better, that one (``chosen``; metadata says so)."""
        from kimp.models.walk_forward import FALLBACK, fit_day_ensemble

        day = parse_day(context.partition_key)
        candidates = trained_models(*member_cards.values())
        baselines = trained_models(baseline_models)
        fallback = {FALLBACK: baselines[FALLBACK]} if FALLBACK in baselines else None
        fit = fit_day_ensemble(candidates, training_dataset, config, fallback=fallback, baselines=baselines)
        path = modeling.model_path("ensemble", day.isoformat())
        fit.model.save(path)
        metrics = {k: v for k, v in fit.validation.items() if k in ("log_loss", "macro_f1", "accuracy")}
        params = {**fit.model.weights, "validation_rows": fit.rows, "chosen": fit.chosen}
        run_id, version = mlflow.log_model(
            context,
            name="ensemble",
            day=day,
            model_dir=path,
            params=params,
            metrics=metrics,
            input_example=training_dataset.filter(pl.col("split") == "train").head(3),
        )
        for name, why in fit.left_out.items():
            context.log.warning(f"ensemble {day}: {name} left out: {why}")
        context.log.info(
            f"ensemble {day}: mixture weights {fit.mixture_weights} on {fit.rows} validation rows"
        )
        context.log.info(f"ensemble {day}: {fit.note}")
        return Output(
            card(
                "ensemble",
                day,
                config,
                path=path,
                metrics=metrics,
                params=params,
                run_id=run_id,
                version=version,
            ),
            metadata={
                "weights": MetadataValue.json(fit.mixture_weights),
                "validation_rows": fit.rows,
                "coverage": MetadataValue.json({k: round(v, 4) for k, v in fit.coverage.items()}),
                "left_out": MetadataValue.json(fit.left_out),
                "chosen": fit.chosen,
                "choice": MetadataValue.json({k: round(v, 4) for k, v in fit.choice.items()}),
                "choice_note": fit.note,
                **{f"val_{k}": round(v, 4) for k, v in fit.validation.items()},
            },
        )

    return ensemble


def _predictions_asset(
    config: WalkForwardConfig, members: list[str], partitions: DailyPartitionsDefinition
) -> AssetsDefinition:
    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        ins={
            "features": _window(-PREDICTION_HISTORY_DAYS, 0),
            "kimchi_premium": _window(-1, 0),
            "ensemble": AssetIn(),
            "baseline_models": AssetIn(),
            **{f"{n}_model": AssetIn() for n in members},
        },
    )
    def predictions(
        context: AssetExecutionContext,
        features: pl.DataFrame,
        kimchi_premium: pl.DataFrame,
        ensemble: pl.DataFrame,
        baseline_models: pl.DataFrame,
        **member_cards: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        """Out-of-sample class probabilities for every bar of day D from models trained before D: one row per
        bar, coin, horizon and model (the ensemble, every member and the baselines). ``label`` is the
        realized class where the day's data already holds it, null until known."""
        from kimp.models.walk_forward import predictions_frame

        day = parse_day(context.partition_key)
        models = {**trained_models(*member_cards.values(), baseline_models), **trained_models(ensemble)}
        frame = predictions_frame(models, features, kimchi_premium, day=day, config=config)
        known = frame["label"].is_not_null().sum()
        context.log.info(
            f"predictions {day}: {frame.height} rows for {len(models)} models, {known} with a known label"
        )
        return Output(
            frame,
            metadata={**table_metadata(frame), "models": ", ".join(models), "labelled_rows": int(known)},
        )

    return predictions


def _evaluation_asset(partitions: DailyPartitionsDefinition) -> AssetsDefinition:
    @asset(partitions_def=partitions, group_name=GROUP, kinds={"polars", "parquet"})
    def model_evaluation(
        context: AssetExecutionContext, mlflow: MlflowResource, predictions: pl.DataFrame
    ) -> Output[pl.DataFrame]:
        """Metrics of day D per model, side by side with the baselines: accuracy, precision, recall, F1
        (macro and per class), log-loss, confusion matrix and calibration error; also logged to each
        model's MLflow run and version of the day (``oos_*``)."""
        import tempfile

        from kimp.models.evaluation import calibration_png, confusion_png, evaluate

        day = parse_day(context.partition_key)
        metrics = evaluate(predictions).with_columns(day=pl.lit(day)).sort("model")
        meta: dict[str, Any] = {"dagster/row_count": metrics.height}
        cols = [c for c in ("model", "n", "accuracy", "macro_f1", "log_loss", "ece") if c in metrics.columns]
        meta["metrics"] = MetadataValue.md(_md(metrics.select(cols)))
        with tempfile.TemporaryDirectory() as tmp:
            ens = metrics.filter(pl.col("model") == "ensemble")
            if ens.height and "confusion" in ens.columns:
                png = confusion_png(ens["confusion"][0], Path(tmp) / "confusion.png", title=f"ensemble {day}")
                meta["confusion_ensemble"] = png_markdown(Path(png).read_bytes(), "confusion")
            if predictions["label"].is_not_null().any():
                png = calibration_png(predictions, Path(tmp) / "calibration.png")
                meta["calibration"] = png_markdown(Path(png).read_bytes(), "calibration")
        for row in metrics.select(cols).iter_rows(named=True):
            context.log.info(f"model_evaluation {day}: {row}")
        if predictions["label"].is_not_null().any():
            logged = mlflow.log_evaluation(metrics, day=day)
            context.log.info(f"model_evaluation {day}: out-of-sample metrics logged to {sorted(logged)}")
        return Output(metrics, metadata=meta)

    return model_evaluation


def build_model_assets(
    config: WalkForwardConfig, partitions: DailyPartitionsDefinition, feature_set: str | None = None
) -> list[AssetsDefinition]:
    """The modeling layer for the walk-forward ``config``: the configured members' assets come from the
    registry (through the factory of their kind), then the baselines, the ensemble, predictions and
    their evaluation. ``feature_set``: the feature catalog's hash, recorded with every registered model."""
    members = registry.members(config.models)
    names = [s.name for s in members]
    return [
        _training_dataset_asset(config, partitions),
        *(ASSET_FACTORIES[s.kind](s, config, partitions, feature_set) for s in members),
        _baselines_asset(config, partitions, feature_set),
        _ensemble_asset(config, names, partitions),
        _predictions_asset(config, names, partitions),
        _evaluation_asset(partitions),
    ]


__all__ = ["ASSET_FACTORIES", "build_model_assets", "card", "register_asset_factory", "trained_models"]
