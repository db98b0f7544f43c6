"""The walk-forward step: honest cutoff, no look-ahead, reproducible, injected LSTM, saved and reloaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.models.base import WalkForwardConfig
from kimp.models.synthetic import alter_after, synthetic_market
from kimp.models.walk_forward import PREDICTIONS, DayModels, predict_day, train_day
from kimp.timeutil import day_start

DAY = date(2024, 1, 4)
FAST = {"num_boost_round": 40, "learning_rate": 0.2}
CONFIG = WalkForwardConfig(window_days=2, models=("xgboost", "lightgbm", "lstm"))
TUNED = {"xgboost": FAST, "lightgbm": FAST}
PROBA = ["p_down", "p_flat", "p_up"]


@dataclass
class FakeSequenceModel:
    """Stands in for the LSTM: needs ``steps`` earlier rows of a coin, else NaN (like a sequence model)."""

    features: list[str]
    steps: int = 100
    name: str = "lstm"
    calls: list[int] = field(default_factory=list)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        pos = frame.with_row_index("_i").select(pl.col("_i").cum_count().over("coin") - 1)["_i"].to_numpy()
        x = frame["f_signal"].fill_null(0.0).to_numpy()
        logits = np.stack([-x, np.zeros_like(x), x], axis=1)
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        p[pos < self.steps] = np.nan
        return p

    def save(self, path: Path) -> None:  # pragma: no cover - the day models are saved without it below
        raise NotImplementedError


def fake_fit_lstm(
    frame: pl.DataFrame, config: WalkForwardConfig, *, features: list[str]
) -> FakeSequenceModel:
    assert frame["label_known_at"].max() < day_start(DAY) - timedelta(minutes=config.embargo)
    return FakeSequenceModel(features=features)


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic_market(DAY - timedelta(days=3), 5, n_features=10, n_null_features=2)


@pytest.fixture(scope="module")
def trained(market) -> tuple[DayModels, pl.DataFrame]:
    features, premium = market
    models = train_day(features, premium, day=DAY, config=CONFIG, tuned_params=TUNED, lstm_fit=fake_fit_lstm)
    return models, predict_day(models, features, premium, day=DAY, config=CONFIG)


def test_training_ends_before_the_day_minus_the_embargo(trained, tmp_path: Path) -> None:
    models, _ = trained
    limit = day_start(DAY) - timedelta(minutes=CONFIG.embargo)
    assert models.cutoff == limit
    assert models.last_label_known_at < limit  # read from the training rows
    models_no_lstm = {k: v for k, v in models.models.items() if k not in ("lstm", "ensemble")}
    stored = DayModels(**{**models.__dict__, "models": models_no_lstm, "members": ["xgboost", "lightgbm"]})
    stored.save(tmp_path / "day")
    assert DayModels.load(tmp_path / "day").last_label_known_at < limit  # and from what was stored
    assert set(models.models) == {
        "xgboost",
        "lightgbm",
        "lstm",
        "persistence",
        "majority",
        "logistic",
        "ensemble",
    }
    assert set(models.models["ensemble"].weights) == {"xgboost", "lightgbm", "lstm"}  # type: ignore[attr-defined]
    assert models.split_rows["train"] > models.split_rows["validation"] > 0
    assert set(models.test_metrics["model"].to_list()) == set(models.models)


def test_predictions_schema_one_row_per_bar_coin_model(trained, market) -> None:
    _, preds = trained
    assert dict(preds.schema) == PREDICTIONS
    assert preds["ts"].min() >= day_start(DAY) and preds["ts"].max() < day_start(DAY + timedelta(days=1))
    assert preds.group_by("model").len()["len"].unique().to_list() == [2 * 1440]
    assert preds.select(pl.struct("ts", "coin", "model").is_duplicated().any()).item() is False
    # history before the day lets the sequence model score every bar of the day
    assert preds.filter(pl.col("model") == "lstm").select(pl.col("p_up").is_nan().sum()).item() == 0
    p = preds.select(PROBA).to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    # labels as known at the end of the day: the last hour's need the next day's premium, so they are null
    end = day_start(DAY + timedelta(days=1))
    models, _ = trained
    features, premium = market
    as_of = predict_day(models, features, premium, day=DAY, config=CONFIG, labels_as_of=end)
    late = as_of.filter(pl.col("ts") >= end - timedelta(minutes=60))
    assert late.height == 2 * 60 * 7 and late["label"].null_count() == late.height
    early = as_of.filter(pl.col("ts") < end - timedelta(minutes=61))
    assert early["label"].null_count() == 0
    assert as_of.drop("label").equals(preds.drop("label"))


def test_models_beat_the_majority_out_of_sample(trained) -> None:
    from kimp.models.evaluation import evaluate

    metrics = {r["model"]: r for r in evaluate(trained[1]).iter_rows(named=True)}
    assert metrics["ensemble"]["log_loss"] < metrics["majority"]["log_loss"]
    assert metrics["xgboost"]["accuracy"] > metrics["majority"]["accuracy"]


def test_predictions_ignore_data_after_the_day_and_are_reproducible(trained, market) -> None:
    features, premium = market
    _, preds = trained
    after = day_start(DAY + timedelta(days=1))
    feats_b, prem_b = alter_after(features, after), alter_after(premium, after)
    assert not feats_b.equals(features)
    models_b = train_day(feats_b, prem_b, day=DAY, config=CONFIG, tuned_params=TUNED, lstm_fit=fake_fit_lstm)
    preds_b = predict_day(models_b, feats_b, prem_b, day=DAY, config=CONFIG)
    # same seed, same past: identical probabilities (labels of the day's end may differ: they are future)
    assert preds_b.select("ts", "coin", "model", *PROBA).equals(preds.select("ts", "coin", "model", *PROBA))


def test_training_of_day_d_never_sees_day_d(trained, market) -> None:
    features, premium = market
    models, _ = trained
    start = day_start(DAY)
    feats_b, prem_b = alter_after(features, start, seed=5), alter_after(premium, start, seed=5)
    models_b = train_day(feats_b, prem_b, day=DAY, config=CONFIG, tuned_params=TUNED, lstm_fit=fake_fit_lstm)
    probe = features.filter(pl.col("ts") >= start).head(500)
    for name in ("xgboost", "lightgbm", "logistic", "ensemble"):
        np.testing.assert_array_equal(
            models_b.models[name].predict_proba(probe), models.models[name].predict_proba(probe)
        )
    assert models_b.test_metrics.equals(models.test_metrics)


def test_without_lstm_fit_the_lstm_is_skipped_and_models_reload(market, tmp_path: Path) -> None:
    features, premium = market
    config = WalkForwardConfig(window_days=2, models=("lightgbm", "lstm"))
    models = train_day(features, premium, day=DAY, config=config, tuned_params=TUNED)
    assert "lstm" in models.skipped and "lstm" not in models.models
    assert models.models["ensemble"].weights == {"lightgbm": 1.0}  # type: ignore[attr-defined]
    preds = predict_day(models, features, premium, day=DAY, config=config)
    models.save(tmp_path / "day")
    loaded = DayModels.load(tmp_path / "day")
    assert loaded.config == config and loaded.features == models.features
    assert predict_day(loaded, features, premium, day=DAY, config=config).equals(preds)
