"""What every direction model shares: the classes, the config of a walk-forward, the fitted-model contract.

Classes are integers so that every library agrees on them: 0 = down, 1 = flat, 2 = up. Probabilities
are always ordered (p_down, p_flat, p_up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

CLASSES: tuple[str, ...] = ("down", "flat", "up")
DOWN, FLAT, UP = 0, 1, 2
KEY_COLUMNS: tuple[str, ...] = ("ts", "coin")


@dataclass(frozen=True)
class WalkForwardConfig:
    """One walk-forward study: what is predicted, on which window, with which honesty margins.

    The model of day D is trained only on rows whose label is known before ``D - embargo`` and
    predicts the bars of day D. Every field is validated so that a bad config fails before training.
    """

    horizon_minutes: int = 60  # premium direction over the next hour (1 to 24 hours)
    window_days: int = 30  # training window that ends at D - embargo
    embargo_minutes: int | None = None  # defaults to the horizon; never shorter than it
    kr_venue: str = "upbit"  # which Korean venue's premium is the target
    premium_column: str = "premium_fx"  # premium_fx | premium_usdt
    # Flat band: a move smaller than the round-trip cost of the spread trade is not tradable.
    # Default = Upbit 0.05% + Binance 0.10% per leg, two legs, in and out: 2 x (0.05 + 0.10) = 0.30 pp.
    round_trip_cost: float = 0.003
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train / validation / test inside the window
    cv_folds: int = 5
    n_trials: int = 20
    seed: int = 7
    models: tuple[str, ...] = (
        "xgboost",
        "lightgbm",
        "lstm",
    )  # members, trained each day (the registry's names)
    lstm_size: str = "cpu"  # "cpu" (defaults sized for 2 cores) | "prd" (the PRD's full size)
    n_jobs: int = 1  # threads per fit (1 or 2); why 1: see kimp.models.boosting.threads_for
    tune_max_rows: int = 12_000  # Optuna CV rows, thinned evenly in time (kimp.models.tuning)
    history_bars: int = 200  # bars before D handed to predictions (sequence models' windows)
    # A member must score this share of the validation rows (with the bars before them as history) to
    # enter the day's ensemble; every member's weight is then fitted on the rows they all scored.
    ensemble_min_coverage: float = 0.8
    # The ensemble is the validated choice among its weighted mixture, its members and the baselines
    # (kimp.models.walk_forward.fit_day_ensemble), so it is never worse on validation than any of them.
    ensemble_select: bool = True
    calibrate: bool = True  # temperature-scale overconfident models on the validation rows
    # Training rows weigh 0.5 ** (age / half-life), age from the newest training row (None: all equal);
    # used by the boosting members and the logistic baseline (kimp.models.dataset.age_weights).
    sample_half_life_days: float | None = None
    # Per-model parameter overrides, validated by each model's own typed parameters (e.g.
    # {"lstm": {"steps": 10}} for kimp.models.sequence.LSTMSizes, {"logistic": {"c": 0.05}}).
    model_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not 60 <= self.horizon_minutes <= 24 * 60:
            raise ValueError(f"horizon_minutes must be 60..1440 (1 to 24 hours), got {self.horizon_minutes}")
        if self.embargo_minutes is not None and self.embargo_minutes < self.horizon_minutes:
            raise ValueError(
                f"embargo_minutes ({self.embargo_minutes}) must be at least the horizon ({self.horizon_minutes})"
            )
        if self.window_days < 1:
            raise ValueError(f"window_days must be >= 1, got {self.window_days}")
        if self.premium_column not in ("premium_fx", "premium_usdt"):
            raise ValueError(
                f"premium_column must be premium_fx or premium_usdt, got {self.premium_column!r}"
            )
        if abs(sum(self.split) - 1.0) > 1e-9 or min(self.split) <= 0:
            raise ValueError(f"split must be three positive fractions summing to 1, got {self.split}")
        if self.cv_folds < 2 or self.n_trials < 1:
            raise ValueError("cv_folds must be >= 2 and n_trials >= 1")
        if not 0 <= self.round_trip_cost < 0.1:
            raise ValueError(f"round_trip_cost is a fraction (0.003 = 0.3 pp), got {self.round_trip_cost}")
        if self.lstm_size not in ("cpu", "prd"):
            raise ValueError(f"lstm_size must be 'cpu' or 'prd', got {self.lstm_size!r}")
        if self.n_jobs not in (1, 2) or self.tune_max_rows < 100 or self.history_bars < 0:
            raise ValueError(
                f"n_jobs must be 1 or 2, tune_max_rows >= 100 and history_bars >= 0; got {self.n_jobs}, "
                f"{self.tune_max_rows}, {self.history_bars}"
            )
        if not 0 < self.ensemble_min_coverage <= 1:
            raise ValueError(f"ensemble_min_coverage is a share in (0, 1], got {self.ensemble_min_coverage}")
        if self.sample_half_life_days is not None and not self.sample_half_life_days > 0:
            raise ValueError(
                f"sample_half_life_days must be > 0 days or None, got {self.sample_half_life_days}"
            )
        if isinstance(self.models, str) or not self.models:
            raise ValueError(f"models must be a non-empty tuple of model names, got {self.models!r}")

    def params_for(self, model: str) -> dict[str, Any]:
        """This model's parameter overrides (empty when none)."""
        return dict(self.model_params.get(model, {}))

    @property
    def embargo(self) -> int:
        """Embargo in minutes: at least the horizon, so no training label overlaps the predicted day."""
        return self.embargo_minutes if self.embargo_minutes is not None else self.horizon_minutes

    @property
    def flat_band(self) -> float:
        """|premium change| below this is 'flat': the move would not pay the round trip."""
        return self.round_trip_cost


@runtime_checkable
class FittedModel(Protocol):
    """A trained direction model. ``frame`` holds ``ts``, ``coin`` and feature columns (sorted by coin, ts).

    ``predict_proba`` returns an (n, 3) float array (p_down, p_flat, p_up), one row per row of ``frame``;
    rows a model cannot score (e.g. a sequence model without enough history) get NaN.

    ``predict_proba_rows`` scores a matrix ``x`` of shape (n, len(features)) in ``features`` order (float32
    or float64, NaN = null), each row on its own, with no history: the numpy path. A model whose rows need
    no context implements ``predict_proba`` as ``predict_proba_rows(feature_matrix(frame, features))``, so
    batch predictions and the signal service (which builds the row straight from a request or a streamed
    vector, without a frame: ~7 ms a call saved) run the same code. A sequence model answers NaN rows
    (it needs the bars before; score it through ``predict_proba`` with them).
    """

    name: str
    features: list[str]

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray: ...

    def predict_proba_rows(self, x: np.ndarray) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...
