"""The walk-forward on its production path: the model assets materialized with dagster.materialize
(test resources from the settings, a partition key, features and premium already in the store), with the
honesty rules asserted from what they stored:

- training of day D ends before D minus the embargo, and never sees day D;
- data after D does not change D's predictions; same seed and data, same predictions;
- shuffled labels give chance;
- every ensemble member is weighted on the same validation rows (sequence models score them with the bars
  before each row); a member that cannot score enough of them is left out, and the metadata says so;
- a model added in one module (tests/plugin_model.py) trains, predicts, enters the ensemble and is
  registered in MLflow, with no other file changing.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from kimp.models import registry
from kimp.models.base import WalkForwardConfig
from kimp.settings import Settings
from kimp.storage import ParquetStore
from kimp.testing import alter_after, synthetic_market
from kimp.timeutil import day_start, in_day
from kimp_pipelines.definitions import build_definitions

DAY = date(2024, 1, 4)
PROBA = ["p_down", "p_flat", "p_up"]
TINY_LSTM = {"steps": 6, "lstm1": 8, "lstm2": 4, "heads": 2, "dense": 8, "max_epochs": 3, "threads": 1}
FAST = {"num_boost_round": 40, "learning_rate": 0.2}
# Every run materializes the whole models group, the Optuna study included: 2 trials (the walk-forward CLI
# test's and the demo's budget) run the study asset's production path; 20 (the default) made the study
# about 60% of each run's CPU, and no assertion here reads the study. tests/test_models_tuning_tracking.py
# tests the search itself (seeded TPE, persistence, the budget).
TRIALS = 2
CONFIG = WalkForwardConfig(
    window_days=2,
    n_trials=TRIALS,
    models=("xgboost", "lightgbm", "lstm"),
    model_params={"lstm": TINY_LSTM},
)


def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic_market(DAY - timedelta(days=3), 5, n_features=10, n_null_features=2)


def store_market(uri: str, features: pl.DataFrame, premium: pl.DataFrame) -> None:
    """The features and premium partitions the model assets read (as the feature store would hold them)."""
    store = ParquetStore(uri)
    for offset in range(-3, 2):
        day = DAY + timedelta(days=offset)
        store.write("features", day.isoformat(), in_day(features, day))
        store.write("kimchi_premium", day.isoformat(), in_day(premium, day))


def run_day(
    home: Path,
    features: pl.DataFrame,
    premium: pl.DataFrame,
    config: WalkForwardConfig = CONFIG,
    plugins: tuple[str, ...] = (),
    day: date = DAY,
):  # type: ignore[no-untyped-def]
    """Materialize the models group of ``day`` as the training job does; returns (result, settings)."""
    settings = Settings(home=home, start_date=date(2023, 12, 1), walk_forward=config, plugins=plugins)
    store_market(str(settings.storage_uri), features, premium)
    defs = build_definitions(settings)
    result = materialize(
        list(defs.assets),  # type: ignore[arg-type]
        selection=AssetSelection.groups("models"),
        partition_key=day.isoformat(),
        resources=defs.resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    mlflow.set_tracking_uri("")  # leave no global tracking URI behind for other tests
    return result, settings


def stored(settings: Settings, table: str, day: date = DAY) -> pl.DataFrame:
    return ParquetStore(str(settings.storage_uri)).read(table, day.isoformat())


def meta(result, asset: str) -> dict:  # type: ignore[no-untyped-def]
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    features, premium = market()
    result, settings = run_day(tmp_path_factory.mktemp("base"), features, premium)
    assert result.success
    return result, settings


def test_training_ends_before_the_day_minus_the_embargo(base) -> None:  # type: ignore[no-untyped-def]
    result, settings = base
    frame = stored(settings, "training_dataset")
    limit = day_start(DAY) - timedelta(minutes=CONFIG.embargo)
    assert frame["label_known_at"].max() < limit  # read from what was stored
    assert meta(result, "training_dataset")["cutoff"] == limit.isoformat()
    assert set(frame["split"].drop_nulls().unique()) == {"train", "validation", "test"}


def test_predictions_cover_the_day_for_every_model(base) -> None:  # type: ignore[no-untyped-def]
    _, settings = base
    preds = stored(settings, "predictions")
    models = {"xgboost", "lightgbm", "lstm", "persistence", "majority", "logistic", "ensemble"}
    assert set(preds["model"]) == models
    assert preds["ts"].min() >= day_start(DAY) and preds["ts"].max() < day_start(DAY + timedelta(days=1))
    assert preds.group_by("model").len()["len"].unique().to_list() == [2 * 1440]
    # the bars before the day let the sequence model score every bar of it
    assert preds.filter(pl.col("model") == "lstm")["p_up"].null_count() == 0
    np.testing.assert_allclose(preds.select(PROBA).to_numpy().sum(axis=1), 1.0, atol=1e-9)
    evaluation = stored(settings, "model_evaluation")
    by_model = {r["model"]: r for r in evaluation.iter_rows(named=True)}
    assert by_model["ensemble"]["log_loss"] < by_model["majority"]["log_loss"]  # the signal is learnable
    assert all(r["log_loss"] < 1.5 for r in by_model.values()), by_model


def test_the_sequence_member_gets_the_boosting_models_top_features(base) -> None:  # type: ignore[no-untyped-def]
    result, _ = base
    lstm = meta(result, "lstm_model")
    assert lstm["feature_rule"].startswith("top 50 features by lightgbm")
    ranked = meta(result, "lightgbm_model")["features_used"]
    assert set(lstm["features_used"]) <= set(ranked)


def test_every_member_is_weighted_on_the_same_validation_rows(base) -> None:  # type: ignore[no-untyped-def]
    result, settings = base
    ensemble = meta(result, "ensemble")
    assert set(ensemble["weights"]) == {"xgboost", "lightgbm", "lstm"}
    # the LSTM scores the validation rows with the bars before them: full coverage, nothing left out
    assert ensemble["coverage"]["lstm"] == 1.0 and ensemble["left_out"] == {}
    frame = stored(settings, "training_dataset")
    assert ensemble["validation_rows"] == frame.filter(pl.col("split") == "validation").height


def test_models_are_registered_in_mlflow(base) -> None:  # type: ignore[no-untyped-def]
    _, settings = base
    client = mlflow.MlflowClient(tracking_uri=str(settings.mlflow_uri))
    for name in ("xgboost", "lightgbm", "lstm", "logistic", "persistence", "majority", "ensemble"):
        assert client.search_model_versions(f"name='kimp-{name}'"), name
    cards = stored(settings, "xgboost_model")
    run = client.get_run(cards["mlflow_run_id"][0])
    assert run.data.tags["partition"] == DAY.isoformat() and "mlflow.parentRunId" in run.data.tags
    # the parent (the Dagster run's MLflow run) says job and day; the child says model and day
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert run.info.run_name == f"xgboost {DAY}" and parent.info.run_name.endswith(f" {DAY}")


def test_data_after_the_day_does_not_change_its_predictions(base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, settings = base
    features, premium = market()
    after = day_start(DAY + timedelta(days=1))
    feats_b, prem_b = alter_after(features, after), alter_after(premium, after)
    assert not feats_b.equals(features)
    result, settings_b = run_day(tmp_path, feats_b, prem_b)
    assert result.success
    a = stored(settings, "predictions").select("ts", "coin", "model", *PROBA)
    b = stored(settings_b, "predictions").select("ts", "coin", "model", *PROBA)
    # same seed, same past: identical probabilities (labels at the day's end may differ: they are future)
    assert a.equals(b)


def test_training_of_day_d_never_sees_day_d(base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, settings = base
    features, premium = market()
    start = day_start(DAY)
    result, settings_b = run_day(
        tmp_path, alter_after(features, start, seed=5), alter_after(premium, start, seed=5)
    )
    assert result.success
    probe = features.filter(pl.col("ts") >= start).head(500)
    for name in ("xgboost", "lightgbm", "lstm"):
        a, b = (
            registry.load_model(Path(stored(s, f"{name}_model")["path"][0])) for s in (settings, settings_b)
        )
        np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    columns = ["model", "val_log_loss", "val_macro_f1", "params"]
    for table in ("baseline_models", "ensemble"):
        assert stored(settings, table).select(columns).equals(stored(settings_b, table).select(columns))


def test_shuffled_labels_give_chance(tmp_path: Path) -> None:
    features, premium = market()
    rng = np.random.default_rng(3)

    def shuffle_moves(prices: np.ndarray) -> np.ndarray:  # the same moves in a random order
        return prices[0] + np.concatenate([[0.0], np.cumsum(rng.permutation(np.diff(prices)))])

    # labels no longer follow the features
    parts = [
        g.with_columns(premium_fx=pl.Series(shuffle_moves(g["premium_fx"].to_numpy())))
        for _, g in premium.group_by("coin", maintain_order=True)
    ]
    shuffled = pl.concat(parts)
    config = WalkForwardConfig(window_days=2, n_trials=TRIALS, models=("lightgbm",))
    result, settings = run_day(tmp_path, features, shuffled, config)
    assert result.success
    metrics = {r["model"]: r for r in stored(settings, "model_evaluation").iter_rows(named=True)}
    assert metrics["lightgbm"]["macro_f1"] < 0.42
    assert metrics["lightgbm"]["log_loss"] > metrics["majority"]["log_loss"] - 0.02


def test_a_member_that_scores_too_few_validation_rows_is_left_out(tmp_path: Path) -> None:
    features, premium = market()
    config = WalkForwardConfig(window_days=2, n_trials=TRIALS, models=("lightgbm", "sparse"))
    result, _ = run_day(tmp_path, features, premium, config, plugins=("tests.sparse_model",))
    assert result.success
    ensemble = meta(result, "ensemble")
    assert set(ensemble["weights"]) == {"lightgbm"}
    assert "sparse" in ensemble["left_out"] and "validation rows" in ensemble["left_out"]["sparse"]
    assert 0.15 < ensemble["coverage"]["sparse"] < 0.25


def test_a_model_added_in_one_module_trains_predicts_ensembles_and_registers(tmp_path: Path) -> None:
    features, premium = market()
    config = WalkForwardConfig(window_days=2, n_trials=TRIALS, models=("lightgbm", "centroid"))
    result, settings = run_day(tmp_path, features, premium, config, plugins=("tests.plugin_model",))
    assert result.success
    assert "centroid" in registry.names(role="member")
    card = stored(settings, "centroid_model")
    assert card["status"][0] == "trained" and card["val_log_loss"][0] < 1.2
    assert "centroid" in meta(result, "ensemble")["weights"]
    preds = stored(settings, "predictions")
    assert preds.filter(pl.col("model") == "centroid").height == 2 * 1440
    client = mlflow.MlflowClient(tracking_uri=str(settings.mlflow_uri))
    assert client.search_model_versions("name='kimp-centroid'")
