"""The regression target: the premium's change over the horizon in basis points, beside the 3-class label.

A registered model of kind ``regression`` (kimp.models.registry) fits on the same training frame as the
direction models (kimp.models.dataset.training_frame: same window, cutoff, purging and splits), reading
the label rows' ``change`` (kimp.models.labels) instead of ``label``: LightGBM with an L2 objective on the
train rows, early-stopped on the validation rows, never reading the test rows. ``predict_change(frame)``
gives basis points (NaN where a row has no features).

``predict_proba`` makes it usable wherever a direction model is: the change is taken as Gaussian around the
prediction with the validation residuals' spread, so p_up = P(change > band), p_down = P(change < -band)
with the flat band of the config it was fitted with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.boosting import DEFAULT_PARAMS, _lgb_params, threads_for
from kimp.models.dataset import age_weights, feature_columns, feature_matrix

BP = 1e4  # a change of 0.0001 (0.01 pp of premium) is one basis point
SIDECAR = "model.json"
BOOSTER = "booster.txt"


@dataclass
class ChangeModel:
    """LightGBM regression of the horizon's change in basis points."""

    name: str
    features: list[str]
    booster: Any
    flat_band_bp: float
    residual_sd_bp: float
    best_iteration: int
    params: dict[str, Any] = field(default_factory=dict)

    def predict_change(self, frame: pl.DataFrame) -> np.ndarray:
        """Predicted change over the horizon, basis points, one per row of ``frame``."""
        if frame.height == 0:
            return np.empty(0)
        x = feature_matrix(frame, self.features)
        return np.asarray(self.booster.predict(x, num_iteration=self.best_iteration + 1), dtype=np.float64)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        from scipy.stats import norm

        mu = self.predict_change(frame)
        sd = max(self.residual_sd_bp, 1e-6)
        p_down = norm.cdf((-self.flat_band_bp - mu) / sd)
        p_up = norm.sf((self.flat_band_bp - mu) / sd)
        p_flat = np.clip(1.0 - p_down - p_up, 0.0, 1.0)
        return np.column_stack([p_down, p_flat, p_up])

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / BOOSTER))
        meta = {
            "type": "change_regression",
            "name": self.name,
            "features": self.features,
            "flat_band_bp": self.flat_band_bp,
            "residual_sd_bp": self.residual_sd_bp,
            "best_iteration": self.best_iteration,
            "params": self.params,
        }
        (path / SIDECAR).write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: Path) -> ChangeModel:
        import lightgbm as lgb

        path = Path(path)
        meta = json.loads((path / SIDECAR).read_text())
        return cls(
            name=meta["name"],
            features=list(meta["features"]),
            booster=lgb.Booster(model_file=str(path / BOOSTER)),
            flat_band_bp=float(meta["flat_band_bp"]),
            residual_sd_bp=float(meta["residual_sd_bp"]),
            best_iteration=int(meta["best_iteration"]),
            params=dict(meta["params"]),
        )


def _rows(frame: pl.DataFrame, split: str) -> pl.DataFrame:
    return frame.filter((pl.col("split") == split) & pl.col("change").is_not_null())


def fit_lightgbm_change(
    frame: pl.DataFrame,
    config: WalkForwardConfig,
    *,
    features: list[str] | None = None,
    params: dict[str, Any] | None = None,
) -> ChangeModel:
    """Fit on the train rows' ``change`` (bp), early-stop on the validation rows (module docstring)."""
    import lightgbm as lgb

    if "change" not in frame.columns:
        raise ValueError(
            "the regression target needs the labels' 'change' column (kimp.models.labels); the training frame "
            f"has {frame.columns[:12]}..."
        )
    merged = {**DEFAULT_PARAMS, **(params or {})}
    train, valid = _rows(frame, "train"), _rows(frame, "validation")
    cols = features if features is not None else feature_columns(train)
    if not cols or train.height == 0:
        raise ValueError(
            f"lightgbm_change: no training rows or features ({train.height} rows, {len(cols)} features)"
        )
    lp = {**_lgb_params(merged, config.seed, threads_for(config)), "objective": "regression", "metric": "l2"}
    lp.pop("num_class", None)
    y_train = train["change"].to_numpy() * BP
    dtrain = lgb.Dataset(
        feature_matrix(train, cols),
        label=y_train,
        weight=age_weights(train, config),
        params={"max_bin": lp["max_bin"], "verbosity": -1},
    )
    valid_sets, callbacks = [], []
    if valid.height:
        valid_sets = [
            lgb.Dataset(feature_matrix(valid, cols), label=valid["change"].to_numpy() * BP, reference=dtrain)
        ]
        callbacks = [lgb.early_stopping(int(merged["early_stopping_rounds"]), verbose=False)]
    booster = lgb.train(
        lp, dtrain, num_boost_round=int(merged["num_boost_round"]), valid_sets=valid_sets, callbacks=callbacks
    )
    best = (
        booster.best_iteration if valid_sets and booster.best_iteration > 0 else booster.current_iteration()
    )
    model = ChangeModel(
        name="lightgbm_change",
        features=cols,
        booster=booster,
        flat_band_bp=config.flat_band * BP,
        residual_sd_bp=float(np.std(y_train)) if len(y_train) else 1.0,
        best_iteration=int(best) - 1,
        params=merged,
    )
    if valid.height:  # the spread of the validation residuals (the train residuals are too small)
        resid = valid["change"].to_numpy() * BP - model.predict_change(valid)
        model.residual_sd_bp = float(np.sqrt(np.mean(resid**2)))
    return model
