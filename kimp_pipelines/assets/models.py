"""The modeling layer's daily assets: a walk-forward step per UTC day.

training_dataset(D) -> xgboost_model, lightgbm_model, lstm_model, baseline_models -> ensemble(D)
-> predictions(D) -> model_evaluation(D); optuna_study(D) is tuned weekly and read by later retrains.

Each model asset stores its model under ``$KIMP_HOME/models/<model>/<day>/`` (loaded by path later),
logs params, metrics and artifacts to MLflow in a nested run of the Dagster run's MLflow run, registers
the model version, and returns a one-row "model card" (what was trained, on what, how it validated).
"""

import json
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetIn,
    DailyPartitionsDefinition,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from kimp.models.base import CLASSES, WalkForwardConfig
from kimp.timeutil import day_bounds, parse_day
from kimp_pipelines.assets.metadata import png_markdown, table_metadata
from kimp_pipelines.resources.io_manager import ALLOW_MISSING
from kimp_pipelines.resources.modeling import ModelingResource

GROUP = "models"
PREDICTION_HISTORY_DAYS = 4
BOOSTING = ("xgboost", "lightgbm")
MLFLOW = {"mlflow", "modeling"}  # legacy mlflow resource: both via context.resources


def _window(start_offset: int, end_offset: int) -> AssetIn:
    return AssetIn(
        partition_mapping=TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
        ),
        metadata={ALLOW_MISSING: True},
    )


def _card(
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


def _validation_scores(model: Any, frame: pl.DataFrame) -> dict[str, float]:
    """Log-loss, macro-F1 and accuracy on the validation rows (rows a model cannot score are skipped)."""
    from kimp.models.evaluation import scores

    valid = frame.filter(pl.col("split") == "validation")
    p = model.predict_proba(valid)
    y = valid["label"].to_numpy()
    ok = ~np.isnan(p).any(axis=1)
    if not ok.any():
        return {}
    s = scores(p[ok], y[ok])
    return {k: float(s[k]) for k in ("log_loss", "macro_f1", "accuracy") if k in s}  # type: ignore[arg-type]


def _track(
    context: AssetExecutionContext,
    model: Any,
    name: str,
    day: date,
    path: Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: list[Path] = (),  # type: ignore[assignment]
) -> tuple[str | None, str | None]:
    """Log one trained model to MLflow (nested under the Dagster run's MLflow run) and register it."""
    from kimp.models.tracking import log_trained_model

    mlflow = context.resources.mlflow
    run_id, version = log_trained_model(
        mlflow,
        name=name,
        day=day,
        model_dir=path,
        params=params,
        metrics=metrics,
        artifacts=list(artifacts),
        tags={"dagster_run_id": context.run_id, "partition": context.partition_key},
    )
    context.log.info(f"{name} {day}: MLflow run {run_id}, registered kimp-{name} version {version}")
    return run_id, version


def build_model_assets(wf: WalkForwardConfig, partitions: DailyPartitionsDefinition) -> list:
    """The modeling layer's assets for the walk-forward ``wf`` over the given daily partitions (the training
    window's partition mapping is fixed when the Definitions are built)."""

    def build_training_dataset(window_days: int):  # type: ignore[no-untyped-def]
        """The asset reads ``window_days + 1`` days of features and premium before its day (partition
        mappings are fixed when the Definitions are built, from KIMP_WF_WINDOW_DAYS)."""

        @asset(
            partitions_def=partitions,
            group_name=GROUP,
            kinds={"polars", "parquet"},
            ins={
                "features": _window(-(window_days + 1), -1),
                "kimchi_premium": _window(-(window_days + 1), -1),
            },
        )
        def training_dataset(
            context: AssetExecutionContext,
            modeling: ModelingResource,
            features: pl.DataFrame,
            kimchi_premium: pl.DataFrame,
        ) -> Output[pl.DataFrame]:
            """Features joined with labels for the window that ends before D minus the embargo, split train /
            validation / test (70/15/15, purged, embargoed). Never holds a label known on or after the cutoff."""
            from kimp.models.dataset import cutoff, training_frame
            from kimp.models.labels import LAST_MOVE, last_move, make_labels

            config = wf
            day = parse_day(context.partition_key)
            if not features.width or not kimchi_premium.width:
                raise ValueError(
                    f"training_dataset {day}: no features or premium stored for the {config.window_days} days before "
                    "it; materialize market data and features for the window first (kimp walk-forward does)"
                )
            labels = make_labels(config, premium=kimchi_premium)
            frame = training_frame(features, labels, day=day, config=config)
            frame = (
                frame.join(last_move(labels), on=["ts", "coin"], how="left")
                if LAST_MOVE not in frame.columns
                else frame
            )
            end = cutoff(day, config)
            latest = frame["label_known_at"].max()
            # Asserted from the data itself, not from the code that made it.
            if latest is not None and latest >= end:  # type: ignore[operator]
                raise AssertionError(
                    f"training_dataset {day}: a label known at {latest} is not before the cutoff {end}"
                )
            balance = (
                frame.filter(pl.col("split").is_not_null())
                .group_by("split", "label")
                .len()
                .sort("split", "label")
                .with_columns(
                    label=pl.col("label").replace_strict(
                        list(range(3)), list(CLASSES), return_dtype=pl.String
                    )
                )
            )
            with pl.Config(
                tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True
            ):
                balance_md = str(balance.pivot(on="label", index="split", values="len"))
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
        with pl.Config(
            tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True
        ):
            return {
                "adf_stationary_share": round(share, 4),
                "adf_least_stationary": MetadataValue.md(str(worst)),
            }

    def _boosting_asset(kind: str):  # type: ignore[no-untyped-def]
        @asset(
            name=f"{kind}_model",
            partitions_def=partitions,
            group_name=GROUP,
            kinds={kind, "mlflow"},
            required_resource_keys=MLFLOW,
            deps=[
                AssetDep(
                    "optuna_study",
                    partition_mapping=TimeWindowPartitionMapping(
                        start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True
                    ),
                )
            ],
            description=f"{kind} direction model of day D: fitted on the train rows of training_dataset(D), early "
            "stopped on its validation rows, with the newest Optuna study's parameters tuned on or before D.",
        )
        def _model(
            context: AssetExecutionContext, training_dataset: pl.DataFrame
        ) -> Iterator[Output[pl.DataFrame]]:
            from kimp.models.boosting import fit_boosting, importance_png
            from kimp.models.studies import latest_study
            from kimp.models.tuning import best_params

            modeling: ModelingResource = context.resources.modeling
            config = wf
            day = parse_day(context.partition_key)
            if kind not in config.models:
                context.log.info(f"{kind} is not among the configured models ({config.models}); skipped")
                yield Output(_card(kind, day, config, path=None, status="disabled"))
                return
            study = latest_study(modeling.optuna_storage, kind, day, config)
            tuned = best_params(modeling.optuna_storage, study) if study else None
            context.log.info(
                f"{kind} {day}: {'parameters of study ' + study if tuned else 'default parameters'}"
            )
            model = fit_boosting(kind, training_dataset, config, tuned)
            path = modeling.model_path(kind, day.isoformat())
            model.save(path)
            png = importance_png(
                model.importance, path / "importance.png", title=f"{kind} {day}: gain importance"
            )
            metrics = _validation_scores(model, training_dataset)
            params = {**model.params, "best_iteration": model.best_iteration, "study": study or "defaults"}
            run_id, version = _track(
                context, model, kind, day, path, params=params, metrics=metrics, artifacts=[png]
            )
            card = _card(
                kind,
                day,
                config,
                path=path,
                train_rows=int((training_dataset["split"] == "train").sum()),
                metrics=metrics,
                params=params,
                run_id=run_id,
                version=version,
            )
            top = model.importance.head(10)
            with pl.Config(
                tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True
            ):
                top_md = str(top)
            yield Output(
                card,
                metadata={
                    **{f"val_{k}": round(v, 4) for k, v in metrics.items()},
                    "importance": png_markdown(Path(png).read_bytes(), f"{kind} importance"),
                    "top_features": MetadataValue.md(top_md),
                    "model_path": str(path),
                    "mlflow_run_id": run_id or "",
                    "tuned_by": study or "defaults",
                },
            )

        return _model

    xgboost_model = _boosting_asset("xgboost")
    lightgbm_model = _boosting_asset("lightgbm")

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"pytorch", "mlflow"},
        required_resource_keys=MLFLOW,
    )
    def lstm_model(
        context: AssetExecutionContext,
        training_dataset: pl.DataFrame,
        lightgbm_model: pl.DataFrame,
        xgboost_model: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        """LSTM with attention over the last bars of the 50 features the boosting model ranked highest."""
        modeling: ModelingResource = context.resources.modeling
        config = wf
        day = parse_day(context.partition_key)
        if "lstm" not in config.models:
            return Output(_card("lstm", day, config, path=None, status="disabled"))
        from kimp.models.dataset import feature_columns
        from kimp.models.registry import load_model
        from kimp.models.sequence import fit_lstm

        ranked: list[str] = []
        for card in (lightgbm_model, xgboost_model):
            if card["status"][0] == "trained":
                ranked = load_model(Path(card["path"][0])).importance["feature"].to_list()  # type: ignore[attr-defined]
                break
        n_features = 50  # the PRD's input width, for both sizes
        chosen = ranked[:n_features] if ranked else feature_columns(training_dataset)[:n_features]
        model = fit_lstm(training_dataset, config, features=chosen)
        path = modeling.model_path("lstm", day.isoformat())
        model.save(path)
        metrics = _validation_scores(model, training_dataset)
        history = model.history
        params = {
            "features": len(chosen),
            "size": config.lstm_size,
            **getattr(history, "summary", lambda: {})(),
        }
        run_id, version = _track(context, model, "lstm", day, path, params=params, metrics=metrics)
        return Output(
            _card(
                "lstm",
                day,
                config,
                path=path,
                train_rows=int((training_dataset["split"] == "train").sum()),
                metrics=metrics,
                params=params,
                run_id=run_id,
                version=version,
            ),
            metadata={
                **{f"val_{k}": round(v, 4) for k, v in metrics.items()},
                "model_path": str(path),
                "features_used": MetadataValue.json(chosen),
            },
        )

    @asset(partitions_def=partitions, group_name=GROUP, kinds={"scikitlearn"})
    def baseline_models(
        context: AssetExecutionContext, modeling: ModelingResource, training_dataset: pl.DataFrame
    ) -> Output[pl.DataFrame]:
        """Baselines every model is reported beside: persistence of the last move, majority class, logistic
        regression on the same features, all fitted on the same train rows."""
        from kimp.models.baselines import fit_logistic, fit_majority, fit_persistence

        config = wf
        day = parse_day(context.partition_key)
        cards = []
        for name, fitted in (
            ("persistence", fit_persistence(training_dataset)),
            ("majority", fit_majority(training_dataset)),
            ("logistic", fit_logistic(training_dataset, config)),
        ):
            path = modeling.model_path(name, day.isoformat())
            fitted.save(path)
            metrics = _validation_scores(fitted, training_dataset)
            cards.append(
                _card(
                    name,
                    day,
                    config,
                    path=path,
                    metrics=metrics,
                    train_rows=int((training_dataset["split"] == "train").sum()),
                )
            )
            context.log.info(f"baseline {name} {day}: validation {metrics}")
        frame = pl.concat(cards)
        return Output(
            frame,
            metadata={
                "baselines": MetadataValue.md(
                    _md(frame.select("model", "val_log_loss", "val_macro_f1", "val_accuracy"))
                )
            },
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

    @asset(partitions_def=partitions, group_name=GROUP, kinds={"mlflow"}, required_resource_keys=MLFLOW)
    def ensemble(
        context: AssetExecutionContext,
        training_dataset: pl.DataFrame,
        xgboost_model: pl.DataFrame,
        lightgbm_model: pl.DataFrame,
        lstm_model: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        """Weighted ensemble of the day's models; weights minimise log-loss on the VALIDATION rows only."""
        from kimp.models.ensemble import fit_ensemble
        from kimp.models.registry import load_model

        modeling: ModelingResource = context.resources.modeling
        config = wf
        day = parse_day(context.partition_key)
        members = {
            card["model"][0]: load_model(Path(card["path"][0]))
            for card in (xgboost_model, lightgbm_model, lstm_model)
            if card["status"][0] == "trained"
        }
        if not members:
            raise ValueError(f"ensemble {day}: no trained model among {config.models}")
        validation = training_dataset.filter(pl.col("split") == "validation")
        model = fit_ensemble(members, validation)
        path = modeling.model_path("ensemble", day.isoformat())
        model.save(path)
        metrics = _validation_scores(model, training_dataset)
        run_id, version = _track(context, model, "ensemble", day, path, params=model.weights, metrics=metrics)
        context.log.info(f"ensemble {day}: weights {model.weights}")
        return Output(
            _card(
                "ensemble",
                day,
                config,
                path=path,
                metrics=metrics,
                params=model.weights,
                run_id=run_id,
                version=version,
            ),
            metadata={
                "weights": MetadataValue.json(model.weights),
                **{f"val_{k}": round(v, 4) for k, v in metrics.items()},
            },
        )

    @asset(
        partitions_def=partitions,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        # Sequence models score a bar from the bars before it: 4 days covers the LSTM's 50 steps on hourly bars
        # (gaps included); the premium of D-1 gives the first bars of D their last move.
        ins={"features": _window(-PREDICTION_HISTORY_DAYS, 0), "kimchi_premium": _window(-1, 0)},
    )
    def predictions(
        context: AssetExecutionContext,
        modeling: ModelingResource,
        features: pl.DataFrame,
        kimchi_premium: pl.DataFrame,
        ensemble: pl.DataFrame,
        baseline_models: pl.DataFrame,
    ) -> Output[pl.DataFrame]:
        """Out-of-sample class probabilities for every bar of day D from models trained before D: one row per
        bar, coin, horizon and model (the ensemble, its members and the baselines). ``label`` is the realized
        class where the day's data already holds it, null until known."""
        from kimp.models.registry import load_model
        from kimp.models.walk_forward import predictions_frame

        config = wf
        day = parse_day(context.partition_key)
        ens = load_model(Path(ensemble["path"][0]))
        models = {"ensemble": ens, **ens.members}  # type: ignore[attr-defined]
        for row in baseline_models.iter_rows(named=True):
            models[row["model"]] = load_model(Path(row["path"]))
        frame = predictions_frame(models, features, kimchi_premium, day=day, config=config)
        # A model that cannot score a bar (no full window yet) leaves it null, not NaN.
        frame = frame.with_columns(pl.col("p_down", "p_flat", "p_up").fill_nan(None))
        lo, hi = day_bounds(day)
        assert frame.filter((pl.col("ts") < lo) | (pl.col("ts") >= hi)).height == 0
        known = frame["label"].is_not_null().sum()
        context.log.info(
            f"predictions {day}: {frame.height} rows for {len(models)} models, {known} with a known label"
        )
        return Output(
            frame,
            metadata={**table_metadata(frame), "models": ", ".join(models), "labelled_rows": int(known)},
        )

    @asset(partitions_def=partitions, group_name=GROUP, kinds={"polars", "parquet"})
    def model_evaluation(context: AssetExecutionContext, predictions: pl.DataFrame) -> Output[pl.DataFrame]:
        """Metrics of day D per model, side by side with the baselines: accuracy, precision, recall, F1
        (macro and per class), log-loss, confusion matrix and calibration error."""
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
        return Output(metrics, metadata=meta)

    return [
        build_training_dataset(wf.window_days),
        xgboost_model,
        lightgbm_model,
        lstm_model,
        baseline_models,
        ensemble,
        predictions,
        model_evaluation,
    ]
