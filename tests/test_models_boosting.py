"""XGBoost / LightGBM: they learn a learnable problem, not a shuffled one; seeded; saved and loaded intact."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.models.base import FittedModel, WalkForwardConfig
from kimp.models.boosting import BoostingModel, fit_boosting, importance_png
from kimp.models.dataset import training_frame
from kimp.models.evaluation import scores
from kimp.models.labels import premium_labels
from kimp.models.registry import load_model
from kimp.testing import synthetic_market

CONFIG = WalkForwardConfig(window_days=3)
# Eight independent synthetic "coins": the test split then holds several regimes and balanced classes.
COINS = tuple(f"C{i}" for i in range(8))
FAST = {"num_boost_round": 60, "learning_rate": 0.15}


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    features, premium = synthetic_market(date(2024, 1, 1), 5, n_features=16, n_null_features=2, coins=COINS)
    return training_frame(features, premium_labels(premium, CONFIG), day=date(2024, 1, 5), config=CONFIG)


def _test_scores(model: FittedModel, frame: pl.DataFrame) -> dict[str, object]:
    test = frame.filter(pl.col("split") == "test")
    return scores(model.predict_proba(test), test["label"].to_numpy())


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Labels permuted inside train and inside validation; the test rows keep their real labels."""
    rng = np.random.default_rng(seed)
    label = frame["label"].cast(pl.Float64).to_numpy().copy()  # history rows: NaN, never moved
    for split in ("train", "validation"):
        idx = np.flatnonzero((frame["split"] == split).fill_null(False).to_numpy())
        label[idx] = label[rng.permutation(idx)]
    return frame.with_columns(label=pl.Series(label).fill_nan(None).cast(pl.Int8))


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_learns_the_signal_and_shuffled_labels_give_chance(frame, kind) -> None:
    # the classes are roughly balanced, so chance is about 1/3 accuracy
    test = frame.filter(pl.col("split") == "test")
    shares = test["label"].value_counts()["count"].to_numpy() / test.height
    assert shares.max() < 0.42
    real = _test_scores(fit_boosting(kind, frame, CONFIG, FAST), frame)
    fake = _test_scores(fit_boosting(kind, _shuffled(frame, 1), CONFIG, FAST), frame)
    assert real["accuracy"] > 0.55 and real["macro_f1"] > 0.55  # type: ignore[operator]
    assert abs(fake["accuracy"] - 1 / 3) < 0.08  # type: ignore[operator]
    assert fake["macro_f1"] < 0.40  # type: ignore[operator]
    assert fake["log_loss"] > real["log_loss"]  # type: ignore[operator]


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_same_seed_same_predictions_and_save_load_round_trip(frame, kind, tmp_path: Path) -> None:
    a = fit_boosting(kind, frame, CONFIG, FAST)
    b = fit_boosting(kind, frame, CONFIG, FAST)
    assert isinstance(a, FittedModel)
    test = frame.filter(pl.col("split") == "test")
    p = a.predict_proba(test)
    assert p.shape == (test.height, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(p, b.predict_proba(test))
    a.save(tmp_path / kind)
    loaded = load_model(tmp_path / kind)
    assert isinstance(loaded, BoostingModel) and loaded.features == a.features
    np.testing.assert_allclose(loaded.predict_proba(test), p, rtol=1e-6)
    # early stopping kept at most the asked rounds; the best round is recorded
    assert 0 <= a.best_iteration < FAST["num_boost_round"]


def test_importance_ranks_the_signal_and_plots(frame, tmp_path: Path) -> None:
    model = fit_boosting("lightgbm", frame, CONFIG, FAST)
    imp = model.importance
    assert imp.columns == ["feature", "gain", "share"]
    assert imp["feature"][0] in ("f_signal", "f_premium_change_60")
    assert abs(imp["share"].sum() - 1.0) < 1e-9
    assert not any(f.startswith("f_missing_family") for f in model.features)
    png = importance_png(imp, tmp_path / "imp.png", top=5)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_feature_at_prediction_is_nan_not_an_error(frame) -> None:
    model = fit_boosting("xgboost", frame, CONFIG, FAST)
    test = frame.filter(pl.col("split") == "test").drop("f_noise_000")
    assert np.isfinite(model.predict_proba(test)).all()
    with pytest.raises(ValueError, match="unknown boosting kind"):
        fit_boosting("catboost", frame, CONFIG)
