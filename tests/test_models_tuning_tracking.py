"""Optuna study in RDB storage (seeded, resumable, read back) and MLflow logging/registration on sqlite."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import optuna
import polars as pl
import pytest

from kimp.models import registry
from kimp.models.base import WalkForwardConfig
from kimp.models.boosting import fit_boosting, importance_png, xgboost_space
from kimp.models.dataset import training_frame
from kimp.models.labels import premium_labels
from kimp.models.tracking import log_evaluation, log_to_active_run, log_trained_model, pyfunc_input
from kimp.models.tuning import best_params, cv_rows, tune
from kimp.testing import synthetic_market

CONFIG = WalkForwardConfig(window_days=2, cv_folds=3, n_trials=3, tune_max_rows=2_000)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    features, premium = synthetic_market(date(2024, 1, 1), 3, n_features=8, n_null_features=1)
    return training_frame(features, premium_labels(premium, CONFIG), day=date(2024, 1, 3), config=CONFIG)


def test_tune_persists_a_seeded_study_and_reads_it_back(frame, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    lightgbm = registry.get("lightgbm")
    best = tune(lightgbm, frame, CONFIG, url, "kimp-lightgbm-test")
    assert set(best) >= {"learning_rate", "num_leaves", "num_boost_round"}
    assert best_params(url, "kimp-lightgbm-test") == best
    study = optuna.load_study(study_name="kimp-lightgbm-test", storage=url)
    assert len(study.trials) == 3 and study.user_attrs["kind"] == "lightgbm"
    assert "log-loss" in study.user_attrs["objective"]
    tried = [t.params for t in study.trials]
    assert len({json.dumps(p, sort_keys=True) for p in tried}) == 3  # a search, not one point thrice
    # a second call completes the same budget instead of adding trials
    assert tune(lightgbm, frame, CONFIG, url, "kimp-lightgbm-test") == best
    assert len(optuna.load_study(study_name="kimp-lightgbm-test", storage=url).trials) == 3
    # same seed, same data, a fresh study: the same parameters are tried; another seed tries others
    again = tune(lightgbm, frame, CONFIG, url, "kimp-lightgbm-again")
    assert again == best
    reseeded = tune(lightgbm, frame, replace(CONFIG, seed=8), url, "kimp-lightgbm-reseeded")
    assert reseeded != best
    # the tuned params feed the daily fit
    model = fit_boosting("lightgbm", frame, CONFIG, best)
    assert model.params["num_leaves"] == best["num_leaves"]


def test_best_params_of_a_missing_study_is_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert best_params(url, "nothing-here") is None


def test_cv_rows_leave_the_test_split_out_and_are_thinned(frame) -> None:
    rows = cv_rows(frame, CONFIG)
    assert "test" not in rows["split"].unique().to_list()
    assert rows.height <= 2_000
    space = xgboost_space(
        optuna.trial.FixedTrial(
            {
                "learning_rate": 0.1,
                "max_depth": 4,
                "min_child_weight": 5.0,
                "subsample": 0.8,
                "colsample": 0.5,
                "reg_lambda": 1.0,
                "num_boost_round": 75,
            }
        )
    )
    assert "num_leaves" not in space and space["num_boost_round"] == 75


def test_log_trained_model_registers_a_loadable_pyfunc_model(frame, tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    exp = mlflow.create_experiment("kimp-test", artifact_location=str(tmp_path / "artifacts"))
    model = fit_boosting("xgboost", frame, CONFIG, {"num_boost_round": 10})
    model_dir = tmp_path / "model"
    model.save(model_dir)
    png = importance_png(model.importance, tmp_path / "importance.png")
    day = date(2024, 1, 3)
    try:
        with mlflow.start_run(run_name="dagster-run", experiment_id=exp) as parent:
            run_id, version = log_trained_model(
                mlflow,
                name="xgboost",
                day=day,
                model_dir=model_dir,
                params={**model.params, "features": model.features},
                metrics={"log_loss": 0.9, "macro_f1": 0.5, "confusion": "[[1]]", "nan": float("nan")},
                artifacts=[png],
                tags={"partition": "2024-01-03"},
                window="2024-01-01..2024-01-02",
                feature_set="abc123",
                input_example=frame,
            )
            second_run, second = log_trained_model(
                mlflow, name="xgboost", day=date(2024, 1, 4), model_dir=model_dir
            )
        # out-of-sample metrics of the day reach the same run and version; unknown models are skipped
        evaluation = pl.DataFrame(
            {"model": ["xgboost", "majority"], "accuracy": [0.61, 0.4], "confusion": ["[[1]]", "[[2]]"]}
        )
        assert log_evaluation(evaluation, day=day, experiment_ids=[exp]) == {"xgboost": run_id}
        loaded = mlflow.pyfunc.load_model(f"models:/kimp-xgboost/{version}")
        by_alias = mlflow.pyfunc.load_model("models:/kimp-xgboost@day-2024-01-03")
    finally:
        mlflow.set_tracking_uri(None)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(run_id)
    assert run.info.run_name == "xgboost 2024-01-03" and run.info.experiment_id == exp
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.data.metrics == {"val_log_loss": 0.9, "val_macro_f1": 0.5, "oos_accuracy": 0.61}
    assert run.data.params["num_boost_round"] == "10"
    assert json.loads(run.data.params["features"])[:1] == model.features[:1]
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/importance.png"]
    assert (version, second) == ("1", "2") and second_run != run_id
    mv = client.get_model_version("kimp-xgboost", "1")
    assert mv.run_id == run_id and "2024-01-01..2024-01-02" in mv.description
    assert {k: mv.tags[k] for k in ("day", "window", "feature_set", "val_log_loss", "oos_accuracy")} == {
        "day": "2024-01-03",
        "window": "2024-01-01..2024-01-02",
        "feature_set": "abc123",
        "val_log_loss": "0.9",
        "oos_accuracy": "0.61",
    }
    assert str(client.get_model_version_by_alias("kimp-xgboost", "day-2024-01-04").version) == "2"
    # the MLflow model: a signature, and kimp's own loader reproducing the model's probabilities
    assert loaded.metadata.signature.inputs.input_names()[:3] == ["ts", "coin", model.features[0]]
    assert loaded.metadata.signature.outputs.input_names() == ["p_down", "p_flat", "p_up"]
    sample = frame.sample(200, seed=1)  # any row order: answers come back in the caller's order
    expected = model.predict_proba(sample)
    for pyfunc_model in (loaded, by_alias):
        got = pyfunc_model.predict(pyfunc_input(sample.select("ts", "coin", *model.features)))
        assert list(got.columns) == ["p_down", "p_flat", "p_up"]
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)


def test_log_to_active_run_needs_an_active_run(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        assert mlflow.active_run() is None
        with pytest.raises(RuntimeError, match="no active MLflow run"):
            log_to_active_run(tmp_path)
    finally:
        mlflow.set_tracking_uri(None)
